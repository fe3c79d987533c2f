"""What rendering needs from the database, as plain frozen dataclasses.

`load_rows(session, vault)` is the only place that reads the database (and decrypts device
secrets); everything downstream (provisioning.render) is a pure function of these rows, so
it is tested without a database. A device's plain secret never leaves this module: the row
carries only the digest Asterisk needs, MD5(username:realm:password).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from tawasul.models import Centre, Device, DeviceKind

# The digest realm: fixed, and Asterisk's default_realm too, so the digests always match.
REALM = "tawasul"
CENTRE_PHONE = DeviceKind.CENTRE_PHONE.value
GOVERNOR_DESK = DeviceKind.GOVERNOR_DESK.value


def md5_digest(username: str, password: str, realm: str = REALM) -> str:
    """`password_digest` value for res_pjsip: MD5 of "username:realm:password", hex."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


@dataclass(frozen=True)
class CentreRow:
    code: str
    name_en: str
    networks: tuple[str, ...]
    prompt_language: str = "ar"
    active: bool = True


@dataclass(frozen=True)
class DeviceRow:
    sip_user: str
    kind: str                      # DeviceKind value
    password_md5: str = field(repr=False)
    centre_code: str | None = None
    label: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class Rows:
    devices: tuple[DeviceRow, ...] = ()
    centres: tuple[CentreRow, ...] = ()


def load_rows(session: Session, vault) -> Rows:
    """Every centre and device, ordered for a stable render. Secrets are turned into digests here."""
    centres = session.scalars(sa.select(Centre).order_by(Centre.code)).all()
    devices = session.scalars(
        sa.select(Device).options(selectinload(Device.centre)).order_by(Device.sip_user)).all()
    return Rows(
        devices=tuple(
            DeviceRow(
                sip_user=d.sip_user, kind=d.kind.value,
                password_md5=md5_digest(d.sip_user, vault.decrypt(d.secret_encrypted)),
                centre_code=d.centre.code if d.centre is not None else None,
                label=d.label, enabled=d.enabled,
            )
            for d in devices
        ),
        centres=tuple(
            CentreRow(code=c.code, name_en=c.name_en, networks=tuple(c.networks),
                      prompt_language=c.prompt_language, active=c.active)
            for c in centres
        ),
    )
