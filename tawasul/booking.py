"""Booking rules: citizens, appointments, cancel, reschedule, check-in, and what is due where."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tawasul import audit, scheduling, validation
from tawasul.models import (
    HOLDING_STATUSES, Appointment, AppointmentKind, AppointmentStatus, Centre, Citizen,
    GovernorSchedule, LocationChoice, utcnow,
)
from tawasul.references import new_checkin_code, new_reference
from tawasul.validation import InvalidInput

ACTIVE = (AppointmentStatus.BOOKED, AppointmentStatus.CHECKED_IN, AppointmentStatus.WAITING)


class SlotTaken(InvalidInput):
    def __init__(self, message: str = "this slot has just been taken; please choose another"):
        super().__init__("slot", message)


def schedule(session: Session) -> GovernorSchedule:
    found = session.scalars(sa.select(GovernorSchedule).order_by(GovernorSchedule.id)).first()
    if found is None:
        raise InvalidInput("schedule", "no governor's schedule is set up yet")
    return found


def centre_by_code(session: Session, code: str) -> Centre:
    centre = session.scalars(sa.select(Centre).where(Centre.code == (code or "").strip().upper())).first()
    if centre is None or not centre.active:
        raise InvalidInput("centre", f"no active centre with code {code!r}")
    return centre


def find_or_register_citizen(session: Session, national_id: str, name: str, mobile: str,
                             home_governorate_id: int | None = None) -> Citizen:
    """The citizen with this ID (name and mobile refreshed), or a new one. Validates all three."""
    national_id = validation.national_id(national_id)
    name = validation.person_name(name)
    mobile = validation.mobile(mobile)
    citizen = session.scalars(sa.select(Citizen).where(Citizen.national_id == national_id)).first()
    if citizen is None:
        citizen = Citizen(national_id=national_id, name=name, mobile=mobile,
                          home_governorate_id=home_governorate_id)
        session.add(citizen)
    else:
        citizen.name, citizen.mobile = name, mobile
        citizen.home_governorate_id = home_governorate_id or citizen.home_governorate_id
    session.flush()
    return citizen


def _holders(session: Session, kind: AppointmentKind, slot_start: dt.datetime):
    return session.scalars(sa.select(Appointment.seat).where(
        Appointment.kind == kind, Appointment.slot_start == slot_start,
        Appointment.status.in_(HOLDING_STATUSES)))


def _resolve_slot(session: Session, kind: AppointmentKind, at: dt.datetime, now: dt.datetime):
    """(slot start, slot minutes, free seats) for a booking at `at`, or a clear refusal."""
    plan = schedule(session)
    if kind is AppointmentKind.VIDEO:
        if at not in scheduling.video_slots(plan, scheduling.local_day(plan, at)):
            raise InvalidInput("at", "is not one of the governor's session slots")
        start, capacity, ends = at, 1, at + dt.timedelta(minutes=plan.slot_minutes)
    else:
        start = scheduling.in_person_session(plan, scheduling.local_day(plan, at))
        if start is None:
            raise InvalidInput("at", "the governor holds no session on that day")
        capacity, ends = plan.in_person_capacity, start
    if ends <= now:
        raise InvalidInput("at", "is in the past")
    taken = set(_holders(session, kind, start))
    free = [seat for seat in range(1, capacity + 1) if seat not in taken]
    if not free:
        raise SlotTaken("this slot is already booked" if capacity == 1
                        else "the governor's session on that day is full")
    return start, plan.slot_minutes, free


def book(session: Session, *, citizen: Citizen, kind: AppointmentKind, at: dt.datetime,
         centre: Centre | None = None, location_choice: LocationChoice | None = None,
         subject: str = "", actor: str, now: dt.datetime | None = None) -> Appointment:
    """Book a slot. The partial unique index refuses a second holder even when two bookings race."""
    now = now or utcnow()
    if kind is AppointmentKind.VIDEO and centre is None:
        raise InvalidInput("centre", "a video session needs a reception centre")
    if kind is AppointmentKind.IN_PERSON:
        centre, location_choice = None, None
    slot_start, minutes, seats = _resolve_slot(session, kind, at, now)
    for seat in seats:
        appointment = Appointment(
            reference=new_reference("appointment"), checkin_code=new_checkin_code(),
            citizen=citizen, kind=kind, slot_start=slot_start, slot_minutes=minutes, seat=seat,
            centre=centre, location_choice=location_choice or (
                LocationChoice.NEAREST_CENTRE if centre else None),
            subject=(subject or "").strip()[:500],
        )
        try:
            with session.begin_nested():
                session.add(appointment)
        except IntegrityError:
            continue  # another booking took this seat between our look and our write
        audit.record(session, actor, "appointment.book", appointment, kind=kind.value, seat=seat)
        return appointment
    raise SlotTaken()


def cancel(session: Session, appointment: Appointment, reason: str, actor: str) -> None:
    if appointment.status not in ACTIVE:
        raise InvalidInput("status", f"a {appointment.status.value} appointment cannot be cancelled")
    if not (reason or "").strip():
        raise InvalidInput("reason", "please give a reason for the cancellation")
    appointment.status = AppointmentStatus.CANCELLED
    appointment.cancel_reason = reason.strip()[:300]
    session.flush()
    audit.record(session, actor, "appointment.cancel", appointment)


def reschedule(session: Session, appointment: Appointment, at: dt.datetime, actor: str,
               now: dt.datetime | None = None) -> Appointment:
    """Move to another slot, keeping the reference; the old slot is freed only if the new one is had."""
    now = now or utcnow()
    if appointment.status not in ACTIVE:
        raise InvalidInput("status", f"a {appointment.status.value} appointment cannot be rescheduled")
    slot_start, _minutes, seats = _resolve_slot(session, appointment.kind, at, now)
    previous = appointment.slot_start
    for seat in seats:
        try:
            with session.begin_nested():
                appointment.slot_start, appointment.seat = slot_start, seat
                appointment.status = AppointmentStatus.BOOKED
                appointment.checked_in_at = None
        except IntegrityError:
            session.refresh(appointment)
            continue
        audit.record(session, actor, "appointment.reschedule", appointment,
                     previous=previous.isoformat(), seat=seat)
        return appointment
    raise SlotTaken()


def check_in(session: Session, appointment: Appointment, actor: str, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    if appointment.status is not AppointmentStatus.BOOKED:
        raise InvalidInput("status", f"a {appointment.status.value} appointment cannot be checked in")
    if appointment.slot_end <= now:
        raise InvalidInput("at", "this appointment's time has passed")
    appointment.status = AppointmentStatus.CHECKED_IN
    appointment.checked_in_at = now
    session.flush()
    audit.record(session, actor, "appointment.check_in", appointment)


def by_reference(session: Session, reference: str) -> Appointment | None:
    return session.scalars(sa.select(Appointment).where(Appointment.reference == reference)).first()


def on_day(session: Session, day: dt.date) -> list[Appointment]:
    """Every appointment on a local day, in time order."""
    plan = schedule(session)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=scheduling.zone(plan))
    end = start + dt.timedelta(days=1)
    return list(session.scalars(
        sa.select(Appointment)
        .where(Appointment.slot_start >= start, Appointment.slot_start < end)
        .order_by(Appointment.slot_start, Appointment.seat)))


def due_at(session: Session, centre: Centre, now: dt.datetime, early_minutes: int,
           late_minutes: int) -> list[Appointment]:
    """Video appointments at this centre whose window (early before start, late after) holds `now`."""
    return list(session.scalars(
        sa.select(Appointment).where(
            Appointment.kind == AppointmentKind.VIDEO,
            Appointment.centre_id == centre.id,
            Appointment.status.in_(ACTIVE),
            Appointment.slot_start <= now + dt.timedelta(minutes=early_minutes),
            Appointment.slot_start >= now - dt.timedelta(minutes=late_minutes),
        ).order_by(Appointment.slot_start)))
