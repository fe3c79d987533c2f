"""IT administration's rules: governorates, centres (allowed networks), devices, the governor's
schedule and holidays. Each function validates everything before it changes anything (raising
validation.InvalidInput / Conflict naming the field), and records the change in the audit log.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import Centre, Device, DeviceKind, GovernorSchedule, Governorate, Holiday, Region
from tawasul.validation import Conflict, InvalidInput
from tawasul.vault import Vault, new_sip_secret

CODE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
SIP_USER = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
MAC = re.compile(r"^[0-9a-f]{12}$")
LANGUAGES = ("ar", "en")
VENDORS = ("baresip", "yealink", "grandstream")


def code(value: str, field: str = "code") -> str:
    value = (value or "").strip().upper()
    if not CODE.match(value):
        raise InvalidInput(field, "use 2 to 10 capital letters or digits, starting with a letter")
    return value


def networks(text: str, field: str = "allowed_networks") -> str:
    """Comma- or line-separated CIDRs -> "a/n, b/m" (normalised). Refuses host bits, junk, none."""
    parts = [p.strip() for p in re.split(r"[,\s]+", text or "") if p.strip()]
    if not parts:
        raise InvalidInput(field, "give at least one network, e.g. 10.20.30.0/24")
    out = []
    for part in parts:
        if "/" not in part:
            raise InvalidInput(field, f"{part} is not a network in CIDR form (address/prefix)")
        try:
            network = ipaddress.ip_network(part, strict=True)
        except ValueError as exc:
            msg = "has host bits set" if "host bits" in str(exc) else "is not a valid network"
            raise InvalidInput(field, f"{part} {msg}") from None
        if str(network) not in out:
            out.append(str(network))
    text = ", ".join(out)
    if len(text) > 500:
        raise InvalidInput(field, "too many networks")
    return text


def mac(value: str | None) -> str | None:
    raw = re.sub(r"[^0-9a-fA-F]", "", value or "").lower()
    if not value or not value.strip():
        return None
    if not MAC.match(raw):
        raise InvalidInput("mac", "is not a MAC address (12 hexadecimal digits)")
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def _name(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(field, "is required")
    if len(value) > 120:
        raise InvalidInput(field, "is too long (120 characters at most)")
    return value


def _unique_code(session: Session, model, value: str, exclude_id: int | None = None) -> None:
    query = sa.select(model.id).where(model.code == value)
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    if session.scalar(query) is not None:
        raise Conflict("code", "is already used")


def create_governorate(session: Session, actor: str, *, code_: str, name_ar: str, name_en: str,
                       region_id: int | None = None) -> Governorate:
    value = code(code_)
    name_ar, name_en = _name(name_ar, "name_ar"), _name(name_en, "name_en")
    region = session.get(Region, region_id) if region_id else session.scalars(sa.select(Region).order_by(Region.id)).first()
    if region is None:
        raise InvalidInput("region", "no region")
    _unique_code(session, Governorate, value)
    governorate = Governorate(region=region, code=value, name_ar=name_ar, name_en=name_en)
    session.add(governorate)
    audit.record(session, actor, "admin.governorate.create", governorate, code=value)
    return governorate


def save_centre(session: Session, actor: str, centre: Centre | None, *, code_: str, governorate_id: int,
                name_ar: str, name_en: str, address: str = "", allowed_networks: str,
                prompt_language: str = "ar", require_code: bool = False, active: bool = True) -> Centre:
    """Create (centre None) or update a centre."""
    value = code(code_)
    name_ar, name_en = _name(name_ar, "name_ar"), _name(name_en, "name_en")
    nets = networks(allowed_networks)
    if prompt_language not in LANGUAGES:
        raise InvalidInput("prompt_language", "must be ar or en")
    governorate = session.get(Governorate, governorate_id)
    if governorate is None:
        raise InvalidInput("governorate_id", "no such governorate")
    if len(address or "") > 300:
        raise InvalidInput("address", "is too long (300 characters at most)")
    _unique_code(session, Centre, value, centre.id if centre else None)
    creating = centre is None
    if creating:
        centre = Centre(code=value, governorate=governorate, name_ar=name_ar, name_en=name_en)
        session.add(centre)
    before = {} if creating else {k: getattr(centre, k) for k in (
        "code", "governorate_id", "allowed_networks", "prompt_language", "require_code", "active")}
    centre.code, centre.governorate, centre.name_ar, centre.name_en = value, governorate, name_ar, name_en
    centre.address, centre.allowed_networks = (address or "").strip(), nets
    centre.prompt_language, centre.require_code, centre.active = prompt_language, bool(require_code), bool(active)
    session.flush()
    changed = sorted(k for k, v in before.items() if getattr(centre, k) != v) if before else None
    audit.record(session, actor, "admin.centre.create" if creating else "admin.centre.update", centre,
                 code=value, **({"changed": changed} if changed is not None else {}))
    return centre


def add_device(session: Session, vault: Vault, actor: str, *, kind: str, sip_user: str, centre_id: int | None,
               label: str = "", vendor: str = "baresip", model: str = "", mac_: str | None = None) -> tuple[Device, str]:
    """A new device with a generated SIP secret (encrypted at rest). Returns (device, plain secret):
    the secret is for the phone's profile only and is never shown."""
    try:
        kind_ = DeviceKind(kind)
    except ValueError:
        raise InvalidInput("kind", "unknown kind") from None
    sip_user = (sip_user or "").strip().lower()
    if not SIP_USER.match(sip_user):
        raise InvalidInput("sip_user", "use 3 to 40 lower-case letters, digits or dashes")
    if vendor not in VENDORS:
        raise InvalidInput("vendor", "unknown vendor")
    mac_value = mac(mac_)
    centre = session.get(Centre, centre_id) if centre_id else None
    if kind_ is DeviceKind.CENTRE_PHONE and centre is None:
        raise InvalidInput("centre_id", "a centre phone needs its centre")
    if len(label or "") > 120 or len(model or "") > 40:
        raise InvalidInput("label", "is too long")
    if session.scalar(sa.select(Device.id).where(Device.sip_user == sip_user)) is not None:
        raise Conflict("sip_user", "is already used")
    if mac_value and session.scalar(sa.select(Device.id).where(Device.mac == mac_value)) is not None:
        raise Conflict("mac", "is already used")
    secret = new_sip_secret()
    device = Device(kind=kind_, centre=centre, label=(label or "").strip(), vendor=vendor, model=(model or "").strip(),
                    mac=mac_value, sip_user=sip_user, secret_encrypted=vault.encrypt(secret))
    session.add(device)
    audit.record(session, actor, "admin.device.create", device, sip_user=sip_user, kind=kind_.value)
    return device, secret


def set_device_enabled(session: Session, actor: str, device: Device, enabled: bool) -> None:
    device.enabled = bool(enabled)
    audit.record(session, actor, "admin.device.enable" if enabled else "admin.device.disable", device)


def roll_provisioning_token(session: Session, actor: str, device: Device) -> None:
    """A new provisioning token for this device: the old one stops working at once."""
    device.token_version += 1
    audit.record(session, actor, "admin.device.roll_token", device, version=device.token_version)


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def save_schedule(session: Session, actor: str, schedule: GovernorSchedule, *, days: list[int],
                  video_start: dt.time, video_end: dt.time, slot_minutes: int, buffer_minutes: int,
                  in_person_start: dt.time, in_person_capacity: int) -> GovernorSchedule:
    days = sorted({int(d) for d in days})
    if not days or any(d < 0 or d > 6 for d in days):
        raise InvalidInput("days", "choose at least one day")
    if not 5 <= slot_minutes <= 120:
        raise InvalidInput("slot_minutes", "must be between 5 and 120 minutes")
    if not 0 <= buffer_minutes <= 60:
        raise InvalidInput("buffer_minutes", "must be between 0 and 60 minutes")
    if _minutes(video_end) <= _minutes(video_start):
        raise InvalidInput("video_end", "must be after the start")
    if _minutes(video_end) - _minutes(video_start) < slot_minutes:
        raise InvalidInput("video_end", "the hours hold not even one slot")
    if _minutes(video_start) <= _minutes(in_person_start) < _minutes(video_end):
        raise Conflict("in_person_start", "overlaps the video session hours")
    if not 1 <= in_person_capacity <= 500:
        raise InvalidInput("in_person_capacity", "must be between 1 and 500")
    before = {k: getattr(schedule, k) for k in ("session_days", "video_start", "video_end", "slot_minutes",
                                                "buffer_minutes", "in_person_start", "in_person_capacity")}
    schedule.session_days = ",".join(str(d) for d in days)
    schedule.video_start, schedule.video_end = video_start, video_end
    schedule.slot_minutes, schedule.buffer_minutes = slot_minutes, buffer_minutes
    schedule.in_person_start, schedule.in_person_capacity = in_person_start, in_person_capacity
    changed = sorted(k for k, v in before.items() if getattr(schedule, k) != v)
    audit.record(session, actor, "admin.schedule.update", schedule, changed=changed)
    return schedule


def add_holiday(session: Session, actor: str, schedule: GovernorSchedule, day: dt.date, name: str) -> Holiday:
    if len(name or "") > 120:
        raise InvalidInput("name", "is too long (120 characters at most)")
    if session.scalar(sa.select(Holiday.id).where(Holiday.schedule_id == schedule.id, Holiday.day == day)):
        raise Conflict("day", "that day is already a holiday")
    holiday = Holiday(schedule=schedule, day=day, name=(name or "").strip())
    session.add(holiday)
    audit.record(session, actor, "admin.holiday.add", holiday, day=day.isoformat())
    return holiday


def remove_holiday(session: Session, actor: str, holiday: Holiday) -> None:
    audit.record(session, actor, "admin.holiday.remove", holiday, day=holiday.day.isoformat())
    session.delete(holiday)
