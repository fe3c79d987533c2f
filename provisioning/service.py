"""`tawasul service install`: the systemd units (and a logrotate file) that run one region in service.

The templates are provisioning/systemd/*; they get the real paths of this installation: the
`tawasul` executable, the state folder, the settings file and this state folder's Asterisk
instance. Every Python service runs as `tawasul`, Asterisk as `asterisk` (inside its root
filesystem when the host has no Asterisk 20+); provisioning/privilege.py says who owns what.
"""
from __future__ import annotations

import os
from pathlib import Path
from string import Template

import click

from provisioning import privilege, supervisor
from provisioning import runtime as asterisk_runtime
from provisioning.writer import write_atomic
from tawasul.clitools import fail, guarded

TEMPLATES = Path(__file__).with_name("systemd")
UNITS = ("tawasul.target", "tawasul-migrate.service", "tawasul-agi.service", "tawasul-asterisk.service",
         "tawasul-web.service", "tawasul-callwatch.service", "tawasul-sms.service")
HARDENING = """UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes"""


def config_file(settings) -> Path:
    return Path(os.environ.get("TAWASUL_CONFIG") or settings.state_dir / "tawasul.toml").resolve()


def render(settings, runtime: asterisk_runtime.Runtime) -> dict[str, str]:
    """Relative path under the prefix -> text of every unit and of the logrotate file."""
    state_dir = settings.state_dir.resolve()
    environment = [f"Environment=TAWASUL_STATE_DIR={state_dir}", f"Environment=TAWASUL_CONFIG={config_file(settings)}"]
    if settings.demo:
        environment.append("Environment=TAWASUL_DEMO=1")
    inner = runtime.inner_dir
    asterisk_cli = " ".join(runtime.asterisk_args())
    values = {
        "tawasul": privilege.which_tawasul(),
        "state_dir": str(state_dir),
        "environment": "\n".join(environment),
        "hardening": HARDENING,
        "instance_dir": str(runtime.host_dir),
        "asterisk": runtime.binary,
        "asterisk_conf": str(runtime.config_file),
        # Inside RootDirectory= these paths are the root filesystem's, as Asterisk sees them.
        "asterisk_root": f"RootDirectory={runtime.root}\nMountAPIVFS=yes\n" if runtime.root else "",
        "asterisk_writes": " ".join(str(inner / name) for name in asterisk_runtime.ASTERISK_WRITES),
        "asterisk_logs": " ".join(str(runtime.log_dir / name) for name in ("messages", "security")),
        "asterisk_cli": asterisk_cli,
    }
    files = {f"etc/systemd/system/{name}": Template((TEMPLATES / name).read_text()).substitute(values)
             for name in UNITS}
    files["etc/logrotate.d/tawasul"] = Template((TEMPLATES / "logrotate").read_text()).substitute(values)
    return files


@click.group("service")
def service():
    """Run Tawasul under systemd."""


@service.command("install")
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=Path("/"), show_default=True,
              help="Write under this folder instead of / (to look at them, or to package them).")
@click.pass_obj
@guarded
def install(settings, prefix):
    """Write the systemd units and the logrotate file for this state folder. Into / (as root), also
    make the system users, Asterisk's instance folders, the certificates and the prompts, and close
    the state folder to everyone but `tawasul`. The database is left to the services' own user:
    tawasul-migrate upgrades it and renders Asterisk's configuration from it (as `tawasul`, which a
    PostgreSQL role of that name lets in by peer authentication, with no password anywhere)."""
    real = prefix.resolve() == Path("/")
    if real and not privilege.is_root():
        fail("installing into / needs root (or give --prefix)")
    if real:
        settings.require_production_secret()
        privilege.ensure_users()
        supervisor.prepare_host(settings)
        privilege.secure_state(settings.state_dir)
    try:
        runtime = asterisk_runtime.ensure_installed(settings)
        files = render(settings, runtime)
    except (asterisk_runtime.AsteriskRuntimeError, privilege.PrivilegeError) as exc:
        fail(str(exc), code=1)
    for relative, text in files.items():
        path = prefix / relative
        write_atomic(path, text, 0o644)
        click.echo(f"wrote {path}")
    if real:
        click.echo("now: systemctl daemon-reload && systemctl enable --now tawasul.target")
