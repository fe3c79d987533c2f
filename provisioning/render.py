"""Render the base Asterisk configuration from Settings: a pure function, filename -> text.

Templates live in the repo's asterisk_conf/ (Jinja2, StrictUndefined). The database-driven
parts (endpoints, centres) extend these templates later; nothing here touches the disk
except reading the templates.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "asterisk_conf"
BASE_FILES = (
    "asterisk.conf", "modules.conf", "logger.conf", "manager.conf", "pjsip.conf",
    "extensions.conf", "rtp.conf", "cdr.conf", "cel.conf", "musiconhold.conf",
    "indications.conf", "features.conf", "ccss.conf", "acl.conf", "udptl.conf", "pjproject.conf", "stasis.conf",
)
PRIVATE_FILES = frozenset({"manager.conf"})  # written with mode 0600
# Certificate and key for the TLS transport, looked for in <state_dir>/certs.
TLS_CERT_NAME = "asterisk.crt"
TLS_KEY_NAME = "asterisk.key"
# Modules Tawasul must never load (spying, recording, shelling out, the old SIP stack).
FORBIDDEN_MODULES = ("chan_sip", "app_chanspy", "app_mixmonitor", "app_monitor", "app_system")


def instance_id(state_dir: os.PathLike | str) -> str:
    """Short, stable identity of the Asterisk instance that belongs to a state folder."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Layout:
    """Where things are, as Asterisk sees them (inside its root filesystem, if any)."""

    instance_dir: str
    moddir: str = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
    datadir: str = "/usr/share/asterisk"
    agidir: str = "/usr/share/asterisk/agi-bin"
    tls_cert: str | None = None
    tls_key: str | None = None


def default_layout(settings) -> Layout:
    """The layout of the packaged Asterisk in the cached root filesystem, without TLS."""
    return Layout(instance_dir=str(PurePosixPath("/srv/tawasul") / instance_id(settings.state_dir)))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _check_value(name: str, value: str) -> str:
    if not value or any(c in value for c in "\r\n;[]") or value != value.strip():
        raise ValueError(f"{name} must be non-empty, on one line, without ; [ ] or surrounding spaces")
    return value


def render_base(settings, ami_secret: str, layout: Layout | None = None) -> dict[str, str]:
    """Every base config file, rendered from `settings` (and `layout`): filename -> text."""
    if not settings.rtp_start < settings.rtp_end:
        raise ValueError("rtp_start must be below rtp_end")
    context = {
        "s": settings,
        "ami_secret": _check_value("ami_secret", ami_secret),
        "ami_user": _check_value("ami_user", settings.ami_user),
        "layout": layout or default_layout(settings),
        "instance_id": instance_id(settings.state_dir),
        "forbidden_modules": FORBIDDEN_MODULES,
        "tls_names": f"{TLS_CERT_NAME}, {TLS_KEY_NAME}",
    }
    env = _environment()
    return {name: env.get_template(name + ".j2").render(context) for name in BASE_FILES}
