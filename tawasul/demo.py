"""Demo data: the Medina region, a reception centre and video phone per governorate, the governor's
desk, a schedule, departments and one account per role. Seeded once; a second run changes nothing."""
from __future__ import annotations

import datetime as dt
import os

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import (
    Centre, Department, Device, DeviceKind, Governorate, GovernorSchedule, Region, Role,
)
from tawasul.settings import Settings
from tawasul.users import create_user
from tawasul.vault import Vault, new_sip_secret

# (code, Arabic, English, latitude, longitude). Coordinates are approximate (town centres).
GOVERNORATES = [
    ("MED", "المدينة المنورة", "Al-Madinah", 24.4672, 39.6111),
    ("YNB", "ينبع", "Yanbu", 24.0891, 38.0637),
    ("ULA", "العلا", "Al-Ula", 26.6085, 37.9232),
    ("BDR", "بدر", "Badr", 23.7800, 38.7906),
    ("KHB", "خيبر", "Khaybar", 25.6986, 39.2913),
    ("MHD", "المهد", "Al-Mahd", 23.4931, 40.8573),
    ("HNK", "الحناكية", "Al-Hanakiyah", 24.8814, 40.5132),
    ("WFR", "وادي الفرع", "Wadi Al-Fara", 23.5660, 39.3700),
    ("EIS", "العيص", "Al-Eis", 25.0675, 38.1000),
]

DEPARTMENTS = [
    ("CIT", "إدارة الحقوق وشؤون المواطنين", "Citizens' Rights and Affairs"),
    ("MUN", "الخدمات البلدية", "Municipal Services"),
    ("HLT", "الشؤون الصحية", "Health Affairs"),
    ("EDU", "التعليم", "Education"),
    ("TRN", "الطرق والنقل", "Roads and Transport"),
    ("SOC", "الخدمات الاجتماعية", "Social Services"),
]

GOVERNOR_DESK_USER = "governor-desk-1"


def centre_phone_user(code: str) -> str:
    return f"centre-{code.lower()}-1"


def is_seeded(session: Session) -> bool:
    return session.scalars(sa.select(Region).limit(1)).first() is not None


def seed(session: Session, settings: Settings, actor: str = "demo") -> dict[str, str] | None:
    """Seed the demo region unless there is already a region. Returns the new accounts' passwords."""
    if is_seeded(session):
        return None
    vault = Vault.for_settings(settings)
    region = Region(code="MDN", name_ar="منطقة المدينة المنورة", name_en="Al-Madinah Region")
    session.add(region)
    for number, (code, name_ar, name_en, lat, lon) in enumerate(GOVERNORATES, start=1):
        governorate = Governorate(region=region, code=code, name_ar=name_ar, name_en=name_en,
                                  latitude=lat, longitude=lon, coordinates_approximate=True)
        centre = Centre(
            governorate=governorate, code=code,
            name_ar=f"مركز تواصل - محافظة {name_ar}" if code != "MED" else "مركز تواصل - إمارة المنطقة",
            name_en=f"Tawasul centre - {name_en}", address=f"{name_en} governorate building",
            latitude=lat, longitude=lon, allowed_networks="127.0.0.0/8",
        )
        session.add(Device(kind=DeviceKind.CENTRE_PHONE, centre=centre, label=f"{name_en} video phone",
                           vendor="baresip", model="baresip", mac=f"02:54:57:00:00:{number:02x}",
                           sip_user=centre_phone_user(code), secret_encrypted=vault.encrypt(new_sip_secret())))
    session.add(Device(kind=DeviceKind.GOVERNOR_DESK, label="Governor's desk", vendor="baresip",
                       model="baresip", mac="02:54:57:00:01:00", sip_user=GOVERNOR_DESK_USER,
                       secret_encrypted=vault.encrypt(new_sip_secret())))
    session.add(GovernorSchedule(region=region, timezone=settings.timezone, session_days="6,0,1,2,3",
                                 video_start=dt.time(9, 0), video_end=dt.time(12, 0), slot_minutes=15,
                                 buffer_minutes=5, in_person_start=dt.time(13, 0), in_person_capacity=30))
    for code, name_ar, name_en in DEPARTMENTS:
        session.add(Department(code=code, name_ar=name_ar, name_en=name_en))
    passwords = {}
    for username, role, full_name in (("staff", Role.STAFF, "Reception staff"),
                                      ("governor_office", Role.GOVERNOR_OFFICE, "Governor's office"),
                                      ("it_admin", Role.IT_ADMIN, "IT administrator")):
        _user, passwords[username] = create_user(session, username, role, full_name, actor=actor)
    audit.record(session, actor, "demo.seed", region)
    return passwords


def write_credentials(settings: Settings, passwords: dict[str, str]) -> str:
    """Keep the demo accounts' passwords in a 0600 file under the state folder; returns its path."""
    path = settings.path("demo-credentials.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# Tawasul demo accounts (username: password). Change them before real use.\n")
        for username, password in passwords.items():
            handle.write(f"{username}: {password}\n")
    return str(path)
