"""SMS messages kept in the outbox table, in the citizen's language; tawasul.sms sends them.

The texts live here, in the core, so every path that books, moves, cancels, reminds or offers a slot,
or moves a request on, writes the same words. Times are shown in the region's zone with the Hijri
date beside them. Texts carry references, never names or the request's content.
"""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from hijridate import Gregorian
from sqlalchemy.orm import Session

from tawasul import scheduling
from tawasul.models import (
    Appointment,
    AppointmentKind,
    OutboxMessage,
    Ticket,
    TicketKind,
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
    "reminder": {
        "ar": "تواصل: تذكير بموعدك {reference} مع سمو أمير المنطقة يوم {when} {where}. رمز الحضور {code}.",
        "en": "Tawasul: a reminder of your meeting {reference} with HH the Governor on {when} {where}. "
              "Check-in code {code}.",
    },
    "ticket": {
        "ar": "تواصل: أصبحت حالة طلبك {reference}: {status}. تابعه برقمه في صفحة المتابعة.",
        "en": "Tawasul: your request {reference} is now {status}. Follow it by its reference on the tracking page.",
    },
    "directive": {
        "ar": "تواصل: أصبحت متابعة توجيه سمو أمير المنطقة في موعدك ({reference}): {status}.",
        "en": "Tawasul: the follow-up of HH the Governor's directive on your meeting ({reference}) is now {status}.",
    },
}

TICKET_STATUSES = {
    "received": {"ar": "مستلم", "en": "received"},
    "under_review": {"ar": "قيد الدراسة", "en": "under review"},
    "referred": {"ar": "محال إلى الجهة المختصة", "en": "referred to the department concerned"},
    "resolved": {"ar": "تمت معالجته", "en": "resolved"},
    "closed": {"ar": "مغلق", "en": "closed"},
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


def new_key() -> str:
    return uuid.uuid4().hex


def queue(session: Session, to: str, body: str, language: str = "ar",
          appointment: Appointment | None = None, key: str | None = None) -> str:
    """Queue an SMS; returns its text. `key` is its idempotency key (default: a new random one)."""
    session.flush()  # so a new appointment has its id
    session.execute(_QUEUE, {"to": to, "body": body, "language": language_of(language),
                             "appointment_id": appointment.id if appointment is not None else None,
                             "key": key or new_key(), "status": "queued", "attempts": 0, "due_at": utcnow(),
                             "claim": "", "last_error": "", "provider_id": ""})
    return body


def notify(session: Session, plan: Plan, appointment: Appointment, event: str, language: str) -> str:
    """Queue the SMS telling the citizen their appointment was booked, moved or cancelled; returns its text."""
    return queue(session, appointment.citizen.mobile, appointment_text(plan, appointment, event, language),
                 language, appointment)


def for_appointment(session: Session, appointment: Appointment) -> list[OutboxMessage]:
    return list(session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.appointment_id == appointment.id).order_by(OutboxMessage.id)))


def unsent(session: Session, limit: int = 100) -> list[OutboxMessage]:
    return list(session.scalars(sa.select(OutboxMessage).where(OutboxMessage.status.in_(("queued", "sending")))
                                .order_by(OutboxMessage.id).limit(limit)))


def failures(session: Session, limit: int = 5) -> tuple[int, list[OutboxMessage]]:
    """How many messages failed for good, and the latest `limit` of them."""
    failed = OutboxMessage.status == "failed"
    count = session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage).where(failed))
    latest = session.scalars(sa.select(OutboxMessage).where(failed)
                             .order_by(OutboxMessage.failed_at.desc(), OutboxMessage.id.desc()).limit(limit))
    return count, list(latest)


def ticket_text(ticket: Ticket, language: str, appointment: Appointment | None = None) -> str:
    language = language_of(language)
    status = TICKET_STATUSES[ticket.status.value][language]
    if ticket.kind is TicketKind.DIRECTIVE:
        meeting = appointment.reference if appointment is not None else ticket.reference
        return TEXTS["directive"][language].format(reference=meeting, status=status)
    return TEXTS["ticket"][language].format(reference=ticket.reference, status=status)


def notify_ticket(session: Session, ticket: Ticket) -> str | None:
    """Queue the SMS telling the citizen their request (or the governor's directive on their meeting)
    has a new status, in the language of their last message (Arabic by default); None without a mobile."""
    to = ticket.contact_mobile or (ticket.citizen.mobile if ticket.citizen is not None else None)
    if not to:
        return None
    appointment = session.get(Appointment, ticket.appointment_id) if ticket.appointment_id else None
    if appointment is not None:
        language = language_for(session, appointment)
    else:
        language = language_of(session.scalars(sa.select(OutboxMessage.language).where(
            OutboxMessage.to == to).order_by(OutboxMessage.id.desc()).limit(1)).first())
    return queue(session, to, ticket_text(ticket, language, appointment), language, appointment)


def language_for(session: Session, appointment: Appointment) -> str:
    """The language the citizen's messages about this appointment were written in (Arabic by default)."""
    found = session.scalars(sa.select(OutboxMessage.language).where(
        OutboxMessage.appointment_id == appointment.id).order_by(OutboxMessage.id.desc()).limit(1)).first()
    return language_of(found)
