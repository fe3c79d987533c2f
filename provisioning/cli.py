"""`tawasul up` and `tawasul asterisk ...`."""
from __future__ import annotations

import sys

import click

from provisioning import runtime as asterisk_runtime
from provisioning import supervisor
from tawasul.clitools import guarded


def _runtime(settings):
    try:
        return asterisk_runtime.ensure_installed(settings)
    except asterisk_runtime.AsteriskRuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("up")
@click.pass_obj
@guarded
def up(settings):
    """Run the whole system in the foreground: database, Asterisk, FastAGI server, web app."""
    sys.exit(supervisor.up(settings))


@click.group("asterisk")
def asterisk():
    """The local Asterisk runtime of this state folder."""


@asterisk.command("install")
@click.pass_obj
def install(settings):
    """Install Asterisk (the host's 20+, else Asterisk 22 in a cached root filesystem)."""
    runtime = _runtime(settings)
    click.echo(f"Asterisk runtime ready: {runtime.root or runtime.binary}")


@asterisk.command("start")
@click.pass_obj
def start(settings):
    """Start Asterisk in the foreground until Ctrl-C (`tawasul up` runs it with everything else)."""
    runtime = _runtime(settings)
    try:
        sys.exit(runtime.start(foreground=True))
    except asterisk_runtime.AsteriskRuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@asterisk.command("stop")
@click.pass_obj
def stop(settings):
    """Stop this state folder's Asterisk."""
    _runtime(settings).stop()
    click.echo("Asterisk stopped")


@asterisk.command("status")
@click.pass_obj
def status(settings):
    """Running or not; version and uptime."""
    state = _runtime(settings).status()
    if not state.running:
        click.echo("Asterisk is not running")
        sys.exit(3)
    click.echo(f"running, PID {state.pid}, up {state.uptime_seconds} s\n{state.version}")


@asterisk.command("cli")
@click.argument("command")
@click.pass_obj
def cli(settings, command):
    """Run one Asterisk CLI command, e.g. "core show version"."""
    try:
        click.echo(_runtime(settings).cli(command), nl=False)
    except asterisk_runtime.AsteriskRuntimeError as exc:
        raise click.ClickException(str(exc)) from None
