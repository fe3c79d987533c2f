"""`tawasul up`: the database, Asterisk, the FastAGI server and the web app, in the foreground.

Each service is a real child process. Ctrl-C or SIGTERM stops them in reverse order; each child
also dies with this process (PR_SET_PDEATHSIG) if it is killed outright, so nothing is left behind.

Started as root, no child runs as root: Asterisk as `asterisk`, the Python services as `tawasul`
(provisioning/privilege.py), with umask 077. This process alone stays root, and does nothing but
wait: it starts Asterisk in its own mount namespace and root filesystem (root only), and stops it
with SIGTERM, which only root (or Asterisk's own user) may send. Under systemd it is not used.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click

from provisioning import certs, phones, privilege, prompts
from provisioning import runtime as asterisk_runtime
from provisioning.apply import load as load_rows
from provisioning.render import RenderError
from tawasul import demo
from tawasul.db import Database, upgrade
from tawasul.settings import Settings, as_environ
from tawasul.vault import Vault

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Service:
    def __init__(self, name: str, args: list[str], env: dict, log: Path, drop_root: bool = True,
                 asterisk_group: bool = False):
        """Started as root, the child runs as the service user (`asterisk_group`: also in group
        asterisk, to read Asterisk's files), in the state folder, with umask 077. `drop_root=False`
        only for the Asterisk helper, which enters Asterisk's root filesystem, then drops root itself."""
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        run_as = {}
        account = privilege.service_account(asterisk_group) if drop_root else None
        if account is not None:
            home = env["TAWASUL_STATE_DIR"]
            run_as = {**account.popen_kwargs(), "umask": 0o077, "cwd": home}
            env = {**env, "HOME": home, "USER": account.name, "LOGNAME": account.name}
        with open(log, "ab") as out:
            owner = privilege.service_account()  # logs are the service user's, Asterisk's too
            if owner is not None:
                os.fchown(out.fileno(), owner.uid, owner.gid)
            self.process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent, **run_as)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])


def _wait_until(check, service: Service, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running():
            raise click.ClickException(f"{service.name} exited while starting:\n{service.log_tail()}")
        if check():
            return
        time.sleep(0.2)
    raise click.ClickException(f"{what} not ready within {timeout:.0f} s:\n{service.log_tail()}")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def prepare_database(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    if not settings.demo:
        return
    db = Database(settings.db_url)
    with db.write() as session:
        passwords = demo.seed(session, settings)
    db.dispose()
    if passwords:
        path = demo.write_credentials(settings, passwords)
        click.echo(f"Demo region seeded. Accounts (shown once; kept in {path}):")
        for username, password in passwords.items():
            click.echo(f"  {username:16} {password}")


def prepare_host(settings: Settings) -> asterisk_runtime.Runtime:
    """What needs no database: the Asterisk runtime and this state folder's instance folders, the
    certificates, the prompts (in the runtime's sound folders: as root under the shared root
    filesystem). `tawasul service install` runs only this as root; the database is the services'."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    runtime = asterisk_runtime.ensure_installed(settings)
    runtime.prepare_dirs()
    certs.ensure_certificates(settings)  # TLS is always on
    prompts.generate_prompts(runtime.sounds_dir)
    return runtime


def prepare(settings: Settings):
    """Everything Asterisk needs before it starts: the runtime, certificates, prompts and the
    configuration rendered from the database; in demo mode also the demo phones' profiles.
    Returns (runtime, rows)."""
    prepare_database(settings)
    runtime = prepare_host(settings)
    db = Database(settings.db_url)
    try:
        rows = load_rows(settings, db)
        if settings.demo:
            with db.read() as session:
                phones.export_demo_profiles(settings, session, Vault.for_settings(settings))
    finally:
        db.dispose()
    try:
        runtime.render_and_write(rows=rows)
    except RenderError as exc:
        raise click.ClickException("the configuration cannot be rendered:\n  " + "\n  ".join(exc.errors)) from None
    except asterisk_runtime.AsteriskRuntimeError as exc:  # a forbidden module could be loaded
        raise click.ClickException(str(exc)) from None
    return runtime, rows


def _check_reachable(settings: Settings) -> None:
    """Started as root: refuse at once if the service user cannot run this Python or reach the code
    or the state folder (a clone under /root, pyenv's Python, pytest's 0700 temporary folder)."""
    account = privilege.service_account(with_asterisk_group=True)
    if account is not None:
        try:
            privilege.check_reachable(account, Path(sys.executable), Path(sys.prefix) / "pyvenv.cfg",
                                      Path(privilege.__file__), settings.state_dir)
        except privilege.PrivilegeError as exc:
            raise click.ClickException(str(exc)) from None


def _secure_state(settings: Settings) -> None:
    try:
        privilege.secure_state(settings.state_dir)
    except privilege.PrivilegeError as exc:
        raise click.ClickException(str(exc)) from None


def up(settings: Settings) -> int:
    settings.require_production_secret()
    started = time.monotonic()
    _check_reachable(settings)
    _secure_state(settings)  # before anything is written in it
    runtime, _rows = prepare(settings)
    logs = settings.path("log")
    _secure_state(settings)  # what prepare() wrote, as root: the service user's
    os.umask(0o077)
    env = {**os.environ, **as_environ(settings)}
    tawasul = [sys.executable, "-m", "tawasul"]

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())

    services: list[Service] = []
    try:
        asterisk = Service("Asterisk", runtime.popen_args(), env, logs / "asterisk.log", drop_root=False)
        services.append(asterisk)
        runtime.wait_booted(asterisk.process)
        agi = Service("FastAGI server", [*tawasul, "agi", "serve"], env, logs / "agi.log")
        services.append(agi)
        # The call watcher files (and deletes) recorded messages; the web diffs and applies Asterisk's configuration.
        services.append(Service("call watcher", [*tawasul, "call", "watch"], env, logs / "calls.log",
                                asterisk_group=True))
        if settings.sms_gateway_url:  # else the outbox keeps its messages (demo: no gateway unless set)
            services.append(Service("SMS sender", [*tawasul, "sms", "send"], env, logs / "sms.log"))
        web = Service("web app", [*tawasul, "web", "serve"], env, logs / "web.log", asterisk_group=True)
        services.append(web)
        _wait_until(lambda: _port_open(settings.agi_host, settings.agi_port), agi, "FastAGI server")
        web_url = f"http://{settings.web_host}:{settings.web_port}"
        _wait_until(lambda: _http_ok(web_url + "/healthz"), web, "web app")

        click.echo(f"\nTawasul is running (ready in {time.monotonic() - started:.0f} s). Ctrl-C stops it.")
        click.echo(f"  web            {web_url}/")
        click.echo(f"  SIP (TLS)      sips:{settings.sip_host}:{settings.sip_tls_port}")
        click.echo(f"  FastAGI        agi://{settings.agi_host}:{settings.agi_port}")
        click.echo(f"  AMI            {settings.ami_host}:{settings.ami_port} "
                   f"(loopback, users {settings.ami_user}-web, -watch, -provision)")
        click.echo(f"  Asterisk       {runtime.host_dir} (tawasul asterisk cli \"core show channels\")")
        click.echo(f"  phone profiles {settings.path('phones').resolve()}")
        click.echo(f"  SMS            {settings.sms_gateway_url or 'no gateway set: messages stay in the outbox'}")
        click.echo(f"  logs           {logs.resolve()}")
        while not stop_requested.wait(0.5):
            for service in services:
                if not service.running():
                    click.echo(f"{service.name} stopped unexpectedly:\n{service.log_tail()}", err=True)
                    return 1
        click.echo("\nStopping ...")
        return 0
    finally:
        for service in reversed(services):
            service.stop()
