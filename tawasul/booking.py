"""Booking rules: citizens, appointments, cancel, reschedule, check-in, and what is due where."""
from __future__ import annotations

import datetime as dt
import hmac

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tawasul import audit, scheduling, validation
from tawasul.models import (
    HOLDING_STATUSES, Appointment, AppointmentKind, AppointmentStatus, Centre, Citizen,
    GovernorSchedule, Holiday, LocationChoice, WaitlistEntry, WaitlistStatus, utcnow,
)
from tawasul.references import new_checkin_code, new_reference
from tawasul.scheduling import Plan
from tawasul.validation import Conflict, InvalidInput

ACTIVE = (AppointmentStatus.BOOKED, AppointmentStatus.CHECKED_IN, AppointmentStatus.WAITING)
# Wrong check-in codes keyed on calls for one appointment, in all, before it takes no call until the desk
# checks the citizen in (about one in 200,000 for a guesser of six-digit codes).
WRONG_CODE_LIMIT = 5


class InvalidInputs(InvalidInput):
    """Several fields refused at once (so a form can show every error beside its field)."""

    def __init__(self, errors: list[InvalidInput]):
        super().__init__(errors[0].field, errors[0].message)
        self.errors = errors


class SlotTaken(Conflict):
    def __init__(self, message: str = "this slot has just been taken; please choose another"):
        super().__init__("slot", message)


# The schedule's columns as scheduling.Plan takes them, one row a holiday (or one with no holiday).
_PLAN = (sa.select(GovernorSchedule.id, GovernorSchedule.timezone, GovernorSchedule.session_days,
                   GovernorSchedule.video_start, GovernorSchedule.video_end, GovernorSchedule.slot_minutes,
                   GovernorSchedule.buffer_minutes, GovernorSchedule.in_person_start,
                   GovernorSchedule.in_person_capacity, Holiday.day)
         .outerjoin(Holiday, Holiday.schedule_id == GovernorSchedule.id)
         .where(GovernorSchedule.id == sa.select(sa.func.min(GovernorSchedule.id)).scalar_subquery()))
_last_plan: tuple[tuple, Plan] | None = None  # (the rows it was made from, the Plan): shared by the process


def schedule(session: Session) -> Plan:
    """The governor's schedule with its holidays, read once per session (a request asks for it often) with
    one statement; the Plan made from the same rows last time is reused, so any change shows at once."""
    global _last_plan
    found = session.info.get("tawasul.schedule")
    if found is None:
        rows = tuple(session.execute(_PLAN))
        if not rows:
            raise InvalidInput("schedule", "no governor's schedule is set up yet")
        last = _last_plan
        if last is not None and last[0] == rows:
            found = last[1]
        else:
            found = Plan(*rows[0][:-1], holiday_days=frozenset(row.day for row in rows if row.day is not None))
            _last_plan = (rows, found)
        session.info["tawasul.schedule"] = found
    return found


# Built once: a booking runs both.
_CENTRE = sa.select(Centre).where(Centre.code == sa.bindparam("code"))
_CITIZEN = sa.select(Citizen).where(Citizen.national_id == sa.bindparam("national_id"))


def centre_by_code(session: Session, code: str) -> Centre:
    centre = session.scalars(_CENTRE, {"code": (code or "").strip().upper()}).first()
    if centre is None or not centre.active:
        raise InvalidInput("centre", f"no active centre with code {code!r}")
    return centre


def find_citizen(session: Session, national_id: str) -> Citizen | None:
    """The citizen with this (valid) national ID or iqama, or None."""
    national_id = validation.national_id(national_id)
    return session.scalars(_CITIZEN, {"national_id": national_id}).first()


def find_or_register_citizen(session: Session, national_id: str, name: str, mobile: str,
                             home_governorate_id: int | None = None, actor: str | None = None) -> Citizen:
    """The citizen with this ID (name and mobile refreshed), or a new one. Validates all three.
    With an `actor`, a registration or a change is written to the audit log (field names only)."""
    errors, clean = [], []
    for check, value in ((validation.national_id, national_id), (validation.person_name, name),
                         (validation.mobile, mobile)):
        try:
            clean.append(check(value))
        except InvalidInput as error:
            errors.append(error)
    if errors:
        raise errors[0] if len(errors) == 1 else InvalidInputs(errors)
    national_id, name, mobile = clean
    citizen = session.scalars(_CITIZEN, {"national_id": national_id}).first()
    if citizen is None:
        citizen = Citizen(national_id=national_id, name=name, mobile=mobile,
                          home_governorate_id=home_governorate_id)
        session.add(citizen)
        changed = ["national_id", "name", "mobile"]
    else:
        changed = [field for field, new in (("name", name), ("mobile", mobile)) if getattr(citizen, field) != new]
        if home_governorate_id and home_governorate_id != citizen.home_governorate_id:
            changed.append("home_governorate_id")
        citizen.name, citizen.mobile = name, mobile
        citizen.home_governorate_id = home_governorate_id or citizen.home_governorate_id
        if not changed:
            session.flush()
            return citizen
    session.flush()
    if actor:
        audit.record(session, actor, "citizen.register" if "national_id" in changed else "citizen.update",
                     citizen, fields=changed)
    return citizen


def place(session: Session, citizen: Citizen, kind: AppointmentKind, location_choice: LocationChoice | None,
          centre_code: str | None) -> tuple[Centre | None, LocationChoice | None]:
    """Where a meeting happens: (centre, how it was chosen). In person: at the emirate (None, None).
    Video: the centre nearest the citizen's home governorate, or the centre where the citizen will be
    on the date (`centre_code`). Without a choice, a centre code means the latter."""
    if kind is AppointmentKind.IN_PERSON:
        return None, None
    if location_choice is None:
        location_choice = LocationChoice.CENTRE_ON_DATE if centre_code else LocationChoice.NEAREST_CENTRE
    if location_choice is LocationChoice.CENTRE_ON_DATE:
        if not centre_code:
            raise InvalidInput("centre", "choose the centre where the citizen will be on that date")
        return centre_by_code(session, centre_code), location_choice
    if centre_code:
        raise InvalidInput("centre", "the nearest centre is computed; give a centre only with centre_on_date")
    from tawasul import geo
    from tawasul.models import Governorate
    home = session.get(Governorate, citizen.home_governorate_id) if citizen.home_governorate_id else None
    ranked = (geo.nearest_centres(session, home.latitude, home.longitude, limit=1)
              if home is not None and home.latitude is not None and home.longitude is not None else [])
    if not ranked:
        raise InvalidInput("centre", "the citizen's home governorate has no known location; please choose a centre")
    return ranked[0][0], location_choice


# Built once, as the slot search's statements below. One look at a slot: the seats held, and a 0 for
# each seat offered to the waitlist (held for it).
_TAKEN = sa.union_all(
    sa.select(Appointment.seat).where(
        Appointment.kind == sa.bindparam("kind"), Appointment.slot_start == sa.bindparam("start"),
        Appointment.status.in_(HOLDING_STATUSES)),
    sa.select(sa.literal(0)).where(
        WaitlistEntry.kind == sa.bindparam("kind"), WaitlistEntry.offered_slot == sa.bindparam("start"),
        WaitlistEntry.status == WaitlistStatus.OFFERED))


def _taken(session: Session, kind: AppointmentKind, start: dt.datetime) -> tuple[list[int], int]:
    """(the seats held, how many seats are offered to the waitlist) of one slot."""
    found = session.execute(_TAKEN, {"kind": kind, "start": start}).scalars().all()
    return [seat for seat in found if seat], found.count(0)


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
    held, offered = _taken(session, kind, start)
    free = [seat for seat in range(1, capacity + 1) if seat not in held]
    if len(free) <= offered:  # seats offered to the waitlist are held for it
        raise SlotTaken("this slot is already booked" if capacity == 1
                        else "the governor's session on that day is full")
    return start, plan.slot_minutes, free


# The slot search runs these for every day it shows.
_HELD_VIDEO = sa.select(Appointment.slot_start).where(
    Appointment.kind == AppointmentKind.VIDEO, Appointment.status.in_(HOLDING_STATUSES),
    Appointment.slot_start.between(sa.bindparam("first"), sa.bindparam("last")))
_OFFERED_VIDEO = sa.select(WaitlistEntry.offered_slot).where(
    WaitlistEntry.kind == AppointmentKind.VIDEO, WaitlistEntry.status == WaitlistStatus.OFFERED,
    WaitlistEntry.offered_slot.between(sa.bindparam("first"), sa.bindparam("last")))


def free_video_slots(session: Session, day: dt.date, now: dt.datetime | None = None) -> list[dt.datetime]:
    """The governor's video slots (UTC) on a local day that are still to come and nobody holds."""
    now = now or utcnow()
    plan = schedule(session)
    slots = [s for s in scheduling.video_slots(plan, day) if s + dt.timedelta(minutes=plan.slot_minutes) > now]
    if not slots:
        return []
    held = set(session.execute(_HELD_VIDEO, {"first": slots[0], "last": slots[-1]}).scalars())
    held |= set(session.execute(_OFFERED_VIDEO, {"first": slots[0], "last": slots[-1]}).scalars())
    return [s for s in slots if s not in held]


def in_person_seats(session: Session, day: dt.date, now: dt.datetime | None = None) -> tuple[dt.datetime, int] | None:
    """(start, seats left) of the governor's daily session on a local day; None without a session
    or once it has begun."""
    now = now or utcnow()
    plan = schedule(session)
    start = scheduling.in_person_session(plan, day)
    if start is None or start <= now:
        return None
    held, offered = _taken(session, AppointmentKind.IN_PERSON, start)
    return start, max(0, plan.in_person_capacity - len(held) - offered)


def day_is_full(session: Session, kind: AppointmentKind, day: dt.date, now: dt.datetime | None = None) -> bool:
    """A session day with nothing left to book (a day without a session is not "full")."""
    if kind is AppointmentKind.VIDEO:
        return video_day_is_full(schedule(session), day, free_video_slots(session, day, now))
    return in_person_day_is_full(in_person_seats(session, day, now))


def video_day_is_full(plan: Plan, day: dt.date, free: list[dt.datetime]) -> bool:
    """day_is_full for video, from the free slots already found (free_video_slots)."""
    return bool(scheduling.video_slots(plan, day)) and not free


def in_person_day_is_full(seats: tuple[dt.datetime, int] | None) -> bool:
    """day_is_full in person, from what in_person_seats already gave."""
    return seats is not None and seats[1] == 0


def session_days(session: Session, start: dt.date, count: int) -> list[dt.date]:
    """The next `count` session days from `start` (holidays and days off skipped; a year at most)."""
    plan = schedule(session)
    days, day = [], start
    while len(days) < count and day < start + dt.timedelta(days=366):
        if scheduling.is_session_day(plan, day):
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def book(session: Session, *, citizen: Citizen, kind: AppointmentKind, at: dt.datetime,
         centre: Centre | None = None, location_choice: LocationChoice | None = None,
         subject: str = "", actor: str, now: dt.datetime | None = None) -> Appointment:
    """Book a slot. The partial unique index refuses a second holder even when two bookings race: a lost
    race tries the next free seat (inside a savepoint); losing the last one raises SlotTaken, and the
    caller's transaction is then only good for rolling back (no savepoint for it: most slots have one seat)."""
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
            if seat != seats[-1]:
                with session.begin_nested():
                    session.add(appointment)
            else:
                session.add(appointment)
                session.flush()
        except IntegrityError:
            continue  # another booking took this seat between our look and our write
        audit.record(session, actor, "appointment.book", appointment, kind=kind.value, seat=seat)
        return appointment
    raise SlotTaken()


def cancel(session: Session, appointment: Appointment, reason: str, actor: str,
           now: dt.datetime | None = None) -> None:
    """Cancel with a reason; the freed slot is offered to the first citizen on that day's waitlist."""
    if appointment.status not in ACTIVE:
        raise Conflict("status", f"a {appointment.status.value} appointment cannot be cancelled")
    if not (reason or "").strip():
        raise InvalidInput("reason", "please give a reason for the cancellation")
    appointment.status = AppointmentStatus.CANCELLED
    appointment.cancel_reason = reason.strip()[:300]
    session.flush()
    audit.record(session, actor, "appointment.cancel", appointment)
    from tawasul import waitlist
    waitlist.slot_freed(session, appointment.kind, appointment.slot_start, actor, now)


def reschedule(session: Session, appointment: Appointment, at: dt.datetime, actor: str,
               now: dt.datetime | None = None) -> Appointment:
    """Move to another slot, keeping the reference; the old slot is freed only if the new one is had."""
    now = now or utcnow()
    if appointment.status not in ACTIVE:
        raise Conflict("status", f"a {appointment.status.value} appointment cannot be rescheduled")
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
        if previous != slot_start:
            from tawasul import waitlist
            waitlist.slot_freed(session, appointment.kind, previous, actor, now)
        return appointment
    raise SlotTaken()


def code_locked(appointment: Appointment) -> bool:
    """Too many wrong check-in codes: no call gets through until the desk checks the citizen in."""
    return appointment.code_failures >= WRONG_CODE_LIMIT


def check_in(session: Session, appointment: Appointment, actor: str, now: dt.datetime | None = None) -> None:
    """The citizen is at the desk. Also unlocks an appointment locked by wrong codes (checked in or not)."""
    now = now or utcnow()
    relock = code_locked(appointment) and appointment.status in ACTIVE
    if appointment.status is not AppointmentStatus.BOOKED and not relock:
        raise Conflict("status", f"a {appointment.status.value} appointment cannot be checked in")
    if appointment.slot_end <= now:
        raise Conflict("at", "this appointment's time has passed")
    if appointment.status is AppointmentStatus.BOOKED:
        appointment.status = AppointmentStatus.CHECKED_IN
        appointment.checked_in_at = now
    appointment.code_failures = 0
    session.flush()
    audit.record(session, actor, "appointment.check_in", appointment)


def try_checkin_code(session: Session, appointment_ids, code: str) -> tuple[int | None, bool]:
    """One check-in code keyed on a call, against the appointments due at the calling centre:
    (the appointment whose code it is or None, whether any of them still takes codes).

    Each try first takes one of every appointment's WRONG_CODE_LIMIT tries, in one UPDATE, and compares
    only with those that had one left: however many calls guess at once, no appointment is ever compared
    with more than that many wrong codes. A right code gives the tries back."""
    tried = session.execute(
        sa.update(Appointment)
        .where(Appointment.id.in_(list(appointment_ids)), Appointment.code_failures < WRONG_CODE_LIMIT)
        .values(code_failures=Appointment.code_failures + 1)
        .returning(Appointment.id, Appointment.checkin_code, Appointment.code_failures)
        .execution_options(synchronize_session=False)).all()
    matches = [row.id for row in tried if hmac.compare_digest(code.encode(), row.checkin_code.encode())]
    if matches:
        session.execute(sa.update(Appointment).where(Appointment.id.in_([row.id for row in tried]))
                        .values(code_failures=Appointment.code_failures - 1)
                        .execution_options(synchronize_session=False))
        return matches[0], True
    for row in tried:
        if row.code_failures >= WRONG_CODE_LIMIT:
            audit.record(session, "agi", "appointment.code_locked", session.get(Appointment, row.id))
    return None, any(row.code_failures < WRONG_CODE_LIMIT for row in tried)


def mark_no_show(session: Session, appointment: Appointment, actor: str, now: dt.datetime | None = None) -> None:
    """The citizen did not come: only for an appointment whose slot has begun (due or past) and that is
    still waiting for its session (booked, checked in or waiting): never one in session or ended."""
    now = now or utcnow()
    if appointment.status not in ACTIVE:
        raise Conflict("status", f"a {appointment.status.value} appointment cannot be marked a no-show")
    if appointment.slot_start > now:
        raise Conflict("at", "this appointment is not due yet")
    from tawasul.models import Call
    if session.scalar(sa.select(sa.func.count(Call.id)).where(
            Call.appointment_id == appointment.id, Call.end_at.is_(None))):
        raise Conflict("status", "a call for this appointment is under way")
    appointment.status = AppointmentStatus.NO_SHOW
    session.flush()
    audit.record(session, actor, "appointment.no_show", appointment)


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
