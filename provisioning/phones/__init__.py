"""Phone profiles: database rows -> the files a phone reads (wazo-provd style).

One base template per vendor in `templates/<vendor>/`, per-model templates `{% extends %}` it;
vendor files are named by MAC address. Three formats:

- `baresip`: a complete ready-to-run folder (`baresip -f FOLDER`): config, accounts, the
  deployment CA, a test tone and the fake camera. What the tests and `make run` use.
- `yealink`: `<mac>.cfg` for the VP59 and T58W (`#!version:1.0.0.1`, `account.1.*` keys).
- `grandstream`: `cfg<mac>.xml` for the GXV33xx (P-values).

Every profile registers over TLS (`settings.sip_host:settings.sip_tls_port`, realm `tawasul`)
with mandatory SDES-SRTP. A centre phone is in *privacy mode*: handset or headset audio only,
no loudspeaker, no auto-answer, so a session cannot be heard beyond a narrow range. The
governor's desk may auto-answer (the default for the desk, `auto_answer=` overrides).

A profile holds the device's SIP password in plain text: it is the one place it must be.
Files are written 0600 in 0700 folders; the web app serves vendor files only with the
device's token (web/provisioning.py).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul.models import Device, DeviceKind
from tawasul.settings import Settings
from tawasul.validation import InvalidInput
from tawasul.vault import Vault

FORMATS = ("baresip", "yealink", "grandstream")
REALM = "tawasul"
GOVERNOR_EXTENSION = "100"   # the governor route from a centre (alias `governor`)
ECHO_EXTENSION = "*43"
TIMEZONE_OFFSETS = {"Asia/Riyadh": "+3"}
# Models with their own template; any other model of the vendor uses the vendor's base.
MODELS = {
    "yealink": ("VP59", "T58W"),
    "grandstream": ("GXV3350", "GXV3370", "GXV3380"),
}
_MAC = re.compile(r"^[0-9a-f]{12}$")


class ProfileError(InvalidInput):
    """A profile cannot be made (unknown device, no MAC, no CA ...); exit code 2 on the CLI."""

    def __init__(self, message: str, field: str = "device"):
        super().__init__(field, message)


def normalize_mac(text: str | None) -> str | None:
    """`02:54:57:00:00:0A`, `02-54-57-00-00-0a`, `0254570000 0a` -> `02545700000a`; else None."""
    if not text:
        return None
    plain = re.sub(r"[\s:.\-]", "", text).lower()
    return plain if _MAC.match(plain) else None


def find_device(session: Session, ref: str) -> Device:
    """The device whose sip_user or MAC address is `ref`."""
    device = session.scalars(sa.select(Device).where(Device.sip_user == ref)).first()
    if device is None:
        mac = normalize_mac(ref)
        if mac:
            for candidate in session.scalars(sa.select(Device).where(Device.mac.is_not(None))):
                if normalize_mac(candidate.mac) == mac:
                    device = candidate
                    break
    if device is None:
        raise ProfileError(f"no device with SIP user or MAC address {ref!r}")
    return device


def device_by_mac(session: Session, mac: str) -> Device | None:
    """The device with this (normalized) MAC address, or None."""
    mac = normalize_mac(mac)
    if not mac:
        return None
    for candidate in session.scalars(sa.select(Device).where(Device.mac.is_not(None))):
        if normalize_mac(candidate.mac) == mac:
            return candidate
    return None


# --------------------------------------------------------------------------- tokens


def token_secret(settings: Settings) -> str:
    """The key provisioning tokens are derived from: the app's secret key, as the web app uses it
    (in demo mode, the random key kept in the state folder instead of the well-known default)."""
    from tawasul.settings import DEFAULT_SECRET_KEY, generated_secret

    if settings.secret_key == DEFAULT_SECRET_KEY:
        return generated_secret(settings, "web-secret-key", 32)
    return settings.secret_key


def provisioning_token(secret_key: str, device: Device) -> str:
    """The device's provisioning token: HMAC-SHA256 of its id, MAC and token version under a key
    derived from the app's secret key. Nothing secret is stored; rolling the device's token version
    (IT) revokes it alone, a new MAC or a new secret key revokes it too."""
    subkey = hmac.new(secret_key.encode(), b"tawasul/phone-provisioning-token/v1", hashlib.sha256).digest()
    message = f"{device.id}:{normalize_mac(device.mac) or ''}:{device.token_version or 1}".encode()
    return hmac.new(subkey, message, hashlib.sha256).hexdigest()[:32]


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class PhoneProfile:
    """What every template needs about one device, secrets included."""

    device_id: int
    kind: str
    sip_user: str
    password: str
    label: str
    mac: str | None          # normalized, or None
    model: str
    server_host: str
    server_port: int
    realm: str
    auto_answer: bool
    privacy: bool             # centre phone: handset/headset only, no loudspeaker
    language: str             # "ar" or "en": UI language
    timezone: str
    tz_offset: str
    governor_extension: str = GOVERNOR_EXTENSION
    echo_extension: str = ECHO_EXTENSION
    base_url: str | None = None   # where the phone fetches files (CA), e.g. https://host/provisioning/

    @property
    def is_centre(self) -> bool:
        return self.kind == DeviceKind.CENTRE_PHONE.value

    @property
    def display_name(self) -> str:
        return _one_line(self.label or self.sip_user)


def _one_line(text: str) -> str:
    return re.sub(r'[\r\n"<>]+', " ", text).strip()


def profile_for(settings: Settings, device: Device, vault: Vault, *,
                auto_answer: bool | None = None, base_url: str | None = None) -> PhoneProfile:
    kind = device.kind.value if isinstance(device.kind, DeviceKind) else str(device.kind)
    if kind == DeviceKind.STAFF.value:
        raise ProfileError(f"{device.sip_user} is a staff device; only centre phones and the governor's desk get profiles")
    if not device.enabled:
        raise ProfileError(f"{device.sip_user} is disabled")
    is_desk = kind == DeviceKind.GOVERNOR_DESK.value
    language = "ar"
    if device.centre is not None and device.centre.prompt_language in ("ar", "en"):
        language = device.centre.prompt_language
    return PhoneProfile(
        device_id=device.id, kind=kind, sip_user=device.sip_user,
        password=vault.decrypt(device.secret_encrypted),
        label=device.label or device.sip_user, mac=normalize_mac(device.mac), model=device.model or "",
        server_host=settings.sip_host, server_port=settings.sip_tls_port, realm=REALM,
        auto_answer=is_desk if auto_answer is None else (auto_answer and is_desk),
        privacy=not is_desk, language=language, timezone=settings.timezone,
        tz_offset=TIMEZONE_OFFSETS.get(settings.timezone, "+3"), base_url=base_url,
    )


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("provisioning.phones", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        autoescape=False,
    )


def _xml_escape(value) -> str:
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def _model_template(vendor: str, model: str, suffix: str) -> str:
    wanted = (model or "").upper().replace("SIP-", "")
    for known in MODELS.get(vendor, ()):
        if wanted == known:
            return f"{vendor}/{known}.{suffix}.j2"
    return f"{vendor}/base.{suffix}.j2"


def vendor_filename(fmt: str, mac: str) -> str:
    return f"{mac}.cfg" if fmt == "yealink" else f"cfg{mac}.xml"


def render_vendor(profile: PhoneProfile, fmt: str) -> tuple[str, str]:
    """(filename, text) of a Yealink or Grandstream profile: a pure function."""
    if fmt not in ("yealink", "grandstream"):
        raise ProfileError(f"unknown vendor format {fmt!r}", field="format")
    if not profile.mac:
        raise ProfileError(f"{profile.sip_user} has no valid MAC address; vendor files are named by MAC")
    suffix = "cfg" if fmt == "yealink" else "xml"
    template = environment().get_template(_model_template(fmt, profile.model, suffix))
    for name, value in (("sip_user", profile.sip_user), ("password", profile.password)):
        if any(c in value for c in "\r\n"):
            raise ProfileError(f"{name} must be on one line")
    text = template.render(p=profile, x=_xml_escape)
    return vendor_filename(fmt, profile.mac), text


# --------------------------------------------------------------------------- export


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def export(settings: Settings, session: Session, vault: Vault, device: Device | str, fmt: str,
           out_dir: Path, *, auto_answer: bool | None = None, base_url: str | None = None,
           dump_audio: bool = False) -> list[Path]:
    """Write `device`'s profile in `fmt` into `out_dir`; returns the files written.

    baresip: `out_dir` becomes the ready-to-run folder itself. Vendors: `out_dir` receives the
    MAC-named file. `dump_audio` (baresip only, for tests): the phone records what it sends and
    hears to WAV files in its folder."""
    from provisioning.writer import write_atomic

    if fmt not in FORMATS:
        raise ProfileError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", field="format")
    if isinstance(device, str):
        device = find_device(session, device)
    profile = profile_for(settings, device, vault, auto_answer=auto_answer, base_url=base_url)
    out_dir = Path(out_dir)
    if fmt == "baresip":
        from provisioning.phones import baresip
        return baresip.write_folder(settings, profile, out_dir, dump_audio=dump_audio)
    name, text = render_vendor(profile, fmt)
    _private_dir(out_dir)
    path = out_dir / name
    write_atomic(path, text, 0o600)
    return [path]


def export_demo_profiles(settings: Settings, session: Session, vault: Vault) -> Path:
    """Every centre phone's and the governor desk's baresip profile under
    `<state_dir>/phones/<sip_user>/`; returns `<state_dir>/phones`. Needs the CA
    (`<state_dir>/certs/ca.crt`) to exist: call it after the certificates are made."""
    root = _private_dir(Path(settings.state_dir) / "phones")
    devices = session.scalars(
        sa.select(Device).where(Device.enabled, Device.kind.in_([DeviceKind.CENTRE_PHONE, DeviceKind.GOVERNOR_DESK]))
        .order_by(Device.id)).all()
    for device in devices:
        export(settings, session, vault, device, "baresip", root / device.sip_user)
    return root
