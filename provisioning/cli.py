"""`tawasul up`, `tawasul asterisk ...`, `tawasul certs ...` and `tawasul provision ...`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from provisioning import apply as apply_module
from provisioning import certs as certs_module
from provisioning import runtime as asterisk_runtime
from provisioning import privilege, supervisor, writer
from provisioning.render import PRIVATE_FILES, RenderError
from tawasul.clitools import fail, guarded
from tawasul.db import Database, upgrade


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


def _database(settings) -> Database:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    return Database(settings.db_url)


def _rows(settings):
    db = _database(settings)
    try:
        return apply_module.load(settings, db)
    finally:
        db.dispose()


@asterisk.command("start")
@click.pass_obj
@guarded
def start(settings):
    """Start Asterisk in the foreground until Ctrl-C (`tawasul up` runs it with everything else)."""
    runtime, rows = supervisor.prepare(settings)
    try:
        sys.exit(runtime.start(foreground=True, rows=rows))
    except asterisk_runtime.AsteriskRuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@asterisk.command("prepare")
@click.pass_obj
@guarded
def prepare(settings):
    """Everything Asterisk needs before it starts, then exit: the database schema (and the demo data
    in demo mode), certificates, prompts and its configuration. As root, the state folder is then
    given to `tawasul` (the containers' migrate step, docker/compose.yaml)."""
    runtime, _rows = supervisor.prepare(settings)
    if privilege.is_root():
        try:
            privilege.secure_state(settings.state_dir)
        except privilege.PrivilegeError as exc:
            fail(str(exc), code=1)
    click.echo(f"Asterisk's configuration is ready in {runtime.host_dir}")


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


# --- certs --------------------------------------------------------------------------------------

@click.group("certs")
def certs():
    """The deployment CA and Asterisk's TLS certificate (<state_dir>/certs)."""


def _show_cert(name, info, problem):
    if info is None:
        click.echo(f"{name:14} missing")
        return
    click.echo(f"{name:14} serial {info.serial:x}, valid until {info.not_after:%Y-%m-%d}"
               + (f", SAN {', '.join(info.san)}" if info.san else "")
               + (f"  PROBLEM: {problem}" if problem else ""))


@certs.command("status")
@click.pass_obj
def certs_status(settings):
    """Show the CA and the server certificate (exit 3 when one is missing or unusable)."""
    rows = certs_module.status(settings)
    for name, info, problem in rows:
        _show_cert(name, info, problem)
    click.echo(f"folder         {certs_module.certs_dir(settings).resolve()}")
    if any(problem for _name, _info, problem in rows):
        click.echo("run `tawasul up` (or `tawasul certs rotate`) to make what is missing")
        sys.exit(3)


@certs.command("rotate")
@click.option("--ca", is_flag=True, help="Also make a new CA (phones must then be given the new ca.crt).")
@click.pass_obj
def certs_rotate(settings, ca):
    """Issue a new server certificate for Asterisk (and with --ca a new CA)."""
    written = certs_module.rotate(settings, ca=ca)
    for path in written:
        click.echo(f"wrote {path}")
    for name, info, problem in certs_module.status(settings):
        _show_cert(name, info, problem)
    click.echo("Asterisk reads its certificate when it starts: restart it (`tawasul up`) to use the new one."
               + (" Give the phones the new ca.crt (tawasul phones export)." if ca else ""))


# --- provision ----------------------------------------------------------------------------------

@click.group("provision")
def provision():
    """Render the Asterisk configuration from the database and apply it."""


@provision.command("render")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the rendered files here (nothing is reloaded).")
@click.pass_obj
@guarded
def provision_render(settings, out_dir):
    """Render and validate every Asterisk file; list them, or write them to --out."""
    started = time.monotonic()
    runtime = _runtime(settings)
    certs_module.ensure_certificates(settings)
    try:
        files = runtime.render(_rows(settings))
    except RenderError as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        fail(f"render refused ({len(exc.errors)} problems); nothing written", code=1)
    if out_dir:
        changed = writer.write_files(out_dir, files, private=PRIVATE_FILES)
        click.echo(f"wrote {len(changed)} changed of {len(files)} files to {out_dir}")
    else:
        for name, text in sorted(files.items()):
            click.echo(f"{name:20} {len(text.splitlines()):6} lines")
    click.echo(f"rendered and validated in {time.monotonic() - started:.2f} s")


@provision.command("apply")
@click.option("--actor", default="cli", show_default=True, help="Who applies (kept in the audit log).")
@click.pass_obj
@guarded
def provision_apply(settings, actor):
    """Render, validate, write what changed and reload only what reads it (never a restart)."""
    runtime = _runtime(settings)
    certs_module.ensure_certificates(settings)
    db = _database(settings)
    try:
        result = apply_module.apply(settings, db, runtime, actor)
    finally:
        db.dispose()
    for line in result.lines():
        click.echo(line, err=not result.ok and line.startswith(("error", "FAILED")))
    if not result.ok:
        sys.exit(1)
