"""SMS-ready messages kept in the outbox table (no gateway yet), in the citizen's language.

The texts live here, in the core, so every path that books, moves, cancels or offers a slot
writes the same words. Times are shown in the region's zone with the Hijri date beside them.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from hijridate import Gregorian
from sqlalchemy.orm import Session

from tawasul import scheduling
from tawasul.models import (
    Appointment,
    AppointmentKind,
    OutboxMessage,
    utcnow,
)
from tawasul.scheduling import Plan

LANGUAGES = ("ar", "en")
WEEKDAYS = {
    "ar": ("الاثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت", "الأحد"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}

TEXTS = {
    "booked": {
        "ar": "تواصل: تم حجز موعدك مع سمو أمير المنطقة {where} يوم {when}. رقم الحجز {reference} ورمز الحضور {code}.",
        "en": "Tawasul: your meeting with HH the Governor is booked {where} on {when}. "
              "Booking reference {reference}, check-in code {code}.",
    },
    "rescheduled": {
        "ar": "تواصل: تم تغيير موعدك {reference} إلى يوم {when} {where}. رمز الحضور {code}.",
        "en": "Tawasul: your meeting {reference} has moved to {when} {where}. Check-in code {code}.",
    },
    "cancelled": {
        "ar": "تواصل: تم إلغاء موعدك {reference}.",
        "en": "Tawasul: your meeting {reference} has been cancelled.",
    },
    "offer": {
        "ar": "تواصل: توفر موعد مع سمو أمير المنطقة يوم {when}. يرجى التواصل مع مركز الاستقبال لتأكيد الحجز.",
        "en": "Tawasul: a meeting with HH the Governor has become free on {when}. "
              "Please contact the reception centre to confirm it.",
    },
}


def language_of(value: str | None) -> str:
    return value if value in LANGUAGES else "ar"


def when_text(plan: Plan, moment: dt.datetime, language: str) -> str:
    """e.g. الأحد 2030-01-06 الساعة 09:00 (2 رمضان 1451 هـ) / Sunday 2030-01-06 at 09:00 (2 Ramadan 1451 AH)."""
    local = moment.astimezone(scheduling.zone(plan))
    h = Gregorian(local.year, local.month, local.day).to_hijri()
    hijri = f"{h.day} {h.month_name(language)} {h.year} {h.notation(language)}"
    at = "الساعة" if language == "ar" else "at"
    return f"{WEEKDAYS[language][local.weekday()]} {local:%Y-%m-%d} {at} {local:%H:%M} ({hijri})"


def where_text(appointment: Appointment, language: str) -> str:
    if appointment.kind is AppointmentKind.IN_PERSON:
        return (f"في الجلسة اليومية بمقر إمارة المنطقة (المقعد {appointment.seat})" if language == "ar"
                else f"at the daily session at the Emirate (seat {appointment.seat})")
    centre = appointment.centre
    return (f"بالاتصال المرئي من {centre.name_ar}" if language == "ar"
            else f"by video from {centre.name_en}")


def appointment_text(plan: Plan, appointment: Appointment, event: str, language: str) -> str:
    language = language_of(language)
    return TEXTS[event][language].format(
        when=when_text(plan, appointment.slot_start, language), where=where_text(appointment, language),
        reference=appointment.reference, code=appointment.checkin_code)


def offer_text(plan: Plan, slot_start: dt.datetime, language: str) -> str:
    language = language_of(language)
    return TEXTS["offer"][language].format(when=when_text(plan, slot_start, language))


# A plain insert, as audit entries: nothing reads a message back in the transaction that queues it,
# and an ORM object would cost a unit-of-work flush of its own.
_QUEUE = sa.insert(OutboxMessage.__table__)


def queue(session: Session, to: str, body: str, language: str = "ar",
          appointment: Appointment | None = None) -> str:
    """Queue an SMS; returns its text."""
    session.flush()  # so a new appointment has its id
    session.execute(_QUEUE, {"to": to, "body": body, "language": language_of(language),
                             "appointment_id": appointment.id if appointment is not None else None})
    return body


def notify(session: Session, plan: Plan, appointment: Appointment, event: str, language: str) -> str:
    """Queue the SMS telling the citizen their appointment was booked, moved or cancelled; returns its text."""
    return queue(session, appointment.citizen.mobile, appointment_text(plan, appointment, event, language),
                 language, appointment)


def for_appointment(session: Session, appointment: Appointment) -> list[OutboxMessage]:
    return list(session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.appointment_id == appointment.id).order_by(OutboxMessage.id)))


def unsent(session: Session, limit: int = 100) -> list[OutboxMessage]:
    return list(session.scalars(sa.select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                                .order_by(OutboxMessage.id).limit(limit)))


def mark_sent(message: OutboxMessage, now: dt.datetime | None = None) -> None:
    message.sent_at = now or utcnow()


def language_for(session: Session, appointment: Appointment) -> str:
    """The language the citizen's messages about this appointment were written in (Arabic by default)."""
    found = session.scalars(sa.select(OutboxMessage.language).where(
        OutboxMessage.appointment_id == appointment.id).order_by(OutboxMessage.id.desc()).limit(1)).first()
    return language_of(found)
