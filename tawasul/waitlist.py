"""The waitlist for full days: first come, first offered.

When a slot is freed (a cancellation, or a reschedule away from it), the first citizen waiting
for that day and kind is offered it: an SMS in their language goes to the outbox and the offer
shows on the desk's list for that day, where staff book it for them or withdraw the entry.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit, outbox, scheduling
from tawasul.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentKind,
    Centre,
    Citizen,
    LocationChoice,
    WaitlistEntry,
    WaitlistStatus,
    utcnow,
)
from tawasul.scheduling import Plan
from tawasul.validation import InvalidInput

OPEN = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)


def _schedule(session: Session) -> Plan:
    from tawasul.booking import schedule
    return schedule(session)


def join(session: Session, *, citizen: Citizen, kind: AppointmentKind, day: dt.date,
         centre: Centre | None = None, location_choice: LocationChoice | None = None,
         language: str = "ar", actor: str, now: dt.datetime | None = None) -> WaitlistEntry:
    """Put a citizen on the waitlist of a full session day (refused while the day has room)."""
    from tawasul import booking

    now = now or utcnow()
    plan = _schedule(session)
    if kind is AppointmentKind.VIDEO and centre is None:
        raise InvalidInput("centre", "a video session needs a reception centre")
    if not scheduling.is_session_day(plan, day):
        raise InvalidInput("day", "the governor holds no session on that day")
    if day < scheduling.local_day(plan, now):
        raise InvalidInput("day", "is in the past")
    if not booking.day_is_full(session, kind, day, now):
        raise InvalidInput("day", "this day still has free slots; please book one")
    already = session.scalars(sa.select(WaitlistEntry).where(
        WaitlistEntry.citizen_id == citizen.id, WaitlistEntry.kind == kind, WaitlistEntry.day == day,
        WaitlistEntry.status.in_(OPEN))).first()
    if already is not None:
        raise InvalidInput("day", "this citizen is already on the waitlist for that day")
    entry = WaitlistEntry(citizen=citizen, kind=kind, day=day,
                          centre=centre if kind is AppointmentKind.VIDEO else None,
                          location_choice=location_choice if kind is AppointmentKind.VIDEO else None,
                          language=outbox.language_of(language))
    session.add(entry)
    audit.record(session, actor, "waitlist.join", entry, kind=kind.value, day=day.isoformat())
    return entry


def _is_free(session: Session, plan: Plan, kind: AppointmentKind, slot_start: dt.datetime) -> bool:
    held = session.scalar(sa.select(sa.func.count(Appointment.id)).where(
        Appointment.kind == kind, Appointment.slot_start == slot_start,
        Appointment.status.in_(HOLDING_STATUSES)))
    offered = session.scalar(sa.select(sa.func.count(WaitlistEntry.id)).where(
        WaitlistEntry.kind == kind, WaitlistEntry.offered_slot == slot_start,
        WaitlistEntry.status == WaitlistStatus.OFFERED))
    capacity = 1 if kind is AppointmentKind.VIDEO else plan.in_person_capacity
    return held + offered < capacity


def slot_freed(session: Session, kind: AppointmentKind, slot_start: dt.datetime, actor: str,
               now: dt.datetime | None = None) -> WaitlistEntry | None:
    """Offer a freed slot to the first citizen waiting for its day; None when nobody waits
    (or the slot has passed, or it is already held or offered)."""
    now = now or utcnow()
    plan = _schedule(session)
    if slot_start <= now or not _is_free(session, plan, kind, slot_start):
        return None
    day = scheduling.local_day(plan, slot_start)
    entry = session.scalars(sa.select(WaitlistEntry).where(
        WaitlistEntry.kind == kind, WaitlistEntry.day == day,
        WaitlistEntry.status == WaitlistStatus.WAITING,
    ).order_by(WaitlistEntry.created_at, WaitlistEntry.id).limit(1)).first()
    if entry is None:
        return None
    entry.status, entry.offered_slot, entry.offered_at = WaitlistStatus.OFFERED, slot_start, now
    outbox.queue(session, entry.citizen.mobile, outbox.offer_text(plan, slot_start, entry.language),
                 entry.language)
    audit.record(session, actor, "waitlist.offer", entry, slot=slot_start.isoformat())
    return entry


def accept(session: Session, entry: WaitlistEntry, actor: str, now: dt.datetime | None = None) -> Appointment:
    """Book the offered slot for the waiting citizen (and queue the confirmation SMS)."""
    from tawasul import booking

    if entry.status is not WaitlistStatus.OFFERED or entry.offered_slot is None:
        raise InvalidInput("status", "this waitlist entry has no open offer")
    offered, entry.status = entry.offered_slot, WaitlistStatus.WAITING  # the offer stops holding the slot
    session.flush()
    appointment = booking.book(session, citizen=entry.citizen, kind=entry.kind, at=offered, centre=entry.centre,
                               location_choice=entry.location_choice, actor=actor, now=now)
    entry.status, entry.appointment_id = WaitlistStatus.BOOKED, appointment.id
    outbox.notify(session, _schedule(session), appointment, "booked", entry.language)
    audit.record(session, actor, "waitlist.book", entry, appointment=appointment.id)
    return appointment


def withdraw(session: Session, entry: WaitlistEntry, actor: str, now: dt.datetime | None = None) -> None:
    """Take an entry off the list; an offer it held goes to the next one waiting."""
    if entry.status not in OPEN:
        raise InvalidInput("status", "this waitlist entry is already closed")
    offered = entry.offered_slot if entry.status is WaitlistStatus.OFFERED else None
    entry.status = WaitlistStatus.CANCELLED
    session.flush()
    audit.record(session, actor, "waitlist.withdraw", entry)
    if offered is not None:
        slot_freed(session, entry.kind, offered, actor, now)


def on_day(session: Session, day: dt.date) -> list[WaitlistEntry]:
    """Open entries for a local day, offers first, then in the order they joined."""
    return list(session.scalars(sa.select(WaitlistEntry).where(
        WaitlistEntry.day == day, WaitlistEntry.status.in_(OPEN),
    ).order_by(WaitlistEntry.status, WaitlistEntry.created_at, WaitlistEntry.id)))  # "offered" < "waiting"
