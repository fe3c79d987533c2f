"""route_call: may this centre phone reach the governor now, and with which appointment?

Dialplan: AGI(agi://HOST:PORT/route_call,${CHANNEL(endpoint)}). The first argument is the
authenticated PJSIP endpoint (the device's sip_user), never the caller ID.

Read-only: nothing is written to the database (state transitions come later).
"""
from __future__ import annotations

import datetime as dt
import hmac
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from agi import variables as v
from agi.call import AgiCall, Decision, HandlerContext
from tawasul import booking, scheduling
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Centre,
    Citizen,
    Device,
    DeviceKind,
    GovernorSchedule,
    Holiday,
)
from tawasul.validation import InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """An appointment due at the calling centre, as plain data (no ORM object leaves the thread)."""

    appointment_id: int
    checkin_code: str
    caller_name: str
    slot_end: dt.datetime


@dataclass(frozen=True)
class Due:
    candidates: tuple[Candidate, ...]
    require_code: bool
    governor_busy: bool


@dataclass(frozen=True)
class Hours:
    """What route_call needs of the governor's schedule (as tawasul.scheduling reads it)."""

    timezone: str
    weekdays: frozenset[int]
    holidays: tuple  # objects with a .day
    video_start: dt.time
    video_end: dt.time


class _Day:
    __slots__ = ("day",)

    def __init__(self, day: dt.date):
        self.day = day


# Built once: this runs for every call, and building a statement costs more than running it.
_PLAN = (sa.select(GovernorSchedule.id, GovernorSchedule.timezone, GovernorSchedule.session_days,
                   GovernorSchedule.video_start, GovernorSchedule.video_end).order_by(GovernorSchedule.id).limit(1))
_HOLIDAYS = sa.select(Holiday.day).where(Holiday.schedule_id == sa.bindparam("plan"))
_BUSY = sa.select(sa.func.count(Appointment.id)).where(Appointment.status == AppointmentStatus.IN_SESSION)
# (id, require_code) of the active centre of an enabled centre phone.
_CENTRE_OF = (sa.select(Centre.id, Centre.require_code).join(Device, Device.centre_id == Centre.id)
              .where(Device.sip_user == sa.bindparam("endpoint"), Device.enabled,
                     Device.kind == DeviceKind.CENTRE_PHONE, Centre.active))
# This centre's active video appointments within a day either side of now (a superset of the local day).
_NEAR = (sa.select(Appointment.id, Appointment.checkin_code, Appointment.slot_start, Appointment.slot_minutes,
                   Appointment.reference, Citizen.name)
         .join(Citizen, Citizen.id == Appointment.citizen_id)
         .where(Appointment.centre_id == sa.bindparam("centre"), Appointment.kind == AppointmentKind.VIDEO,
                Appointment.status.in_(booking.ACTIVE),
                Appointment.slot_start >= sa.bindparam("since"), Appointment.slot_start <= sa.bindparam("until"))
         .order_by(Appointment.slot_start, Appointment.id))


def load_hours(db: sa.Connection) -> Hours:
    row = db.execute(_PLAN).first()
    if row is None:
        raise InvalidInput("schedule", "no governor's schedule is set up yet")
    holidays = tuple(_Day(day) for day in db.execute(_HOLIDAYS, {"plan": row.id}).scalars())
    weekdays = frozenset(int(d) for d in row.session_days.split(",") if d.strip())
    return Hours(row.timezone, weekdays, holidays, row.video_start, row.video_end)


def in_hours(plan: Hours | GovernorSchedule, now: dt.datetime) -> bool:
    """A session day (not a holiday), between the start and the end of video sessions, local time."""
    day = scheduling.local_day(plan, now)
    if not scheduling.is_session_day(plan, day):
        return False
    zone = scheduling.zone(plan)
    start = dt.datetime.combine(day, plan.video_start, tzinfo=zone)
    end = dt.datetime.combine(day, plan.video_end, tzinfo=zone)
    return start <= now < end


def governor_busy(db: sa.Connection) -> bool:
    return db.execute(_BUSY).scalar() > 0


def _centre_of(db: sa.Connection, endpoint: str):
    return db.execute(_CENTRE_OF, {"endpoint": endpoint}).first() if endpoint else None


def _appointments_near(db: sa.Connection, centre_id: int, now: dt.datetime):
    day = dt.timedelta(days=1)
    return db.execute(_NEAR, {"centre": centre_id, "since": now - day, "until": now + day}).all()


def assess(session: Session, endpoint: str, now: dt.datetime, early: int, late: int) -> Decision | Due:
    """The database half of the decision (HandlerContext.in_db runs it). Few, narrow, prebuilt queries
    and no ORM objects (Core, on the session's connection): this runs for every call, and the
    server's throughput is this function's."""
    db = session.connection()
    centre = _centre_of(db, endpoint)
    if centre is None:
        return Decision.deny(v.UNKNOWN_DEVICE)
    rows = _appointments_near(db, centre.id, now)
    opens, closes = now + dt.timedelta(minutes=early), now - dt.timedelta(minutes=late)
    due = [r for r in rows if closes <= r.slot_start <= opens]  # the window booking.due_at uses
    if due:
        return Due(
            # The caller name is shown on the governor's phone: the citizen's name and reference, never the ID.
            candidates=tuple(Candidate(r.id, r.checkin_code, f"{r.name} {r.reference}",
                                       r.slot_start + dt.timedelta(minutes=r.slot_minutes)) for r in due),
            require_code=centre.require_code or len(due) > 1,
            governor_busy=governor_busy(db),
        )

    # A citizen with a booking here today hears why this is not the moment, even outside hours.
    plan = load_hours(db)
    day_start = dt.datetime.combine(scheduling.local_day(plan, now), dt.time(0), tzinfo=scheduling.zone(plan))
    today = [r.slot_start for r in rows if day_start <= r.slot_start < day_start + dt.timedelta(days=1)]
    if any(start > opens for start in today):
        return Decision.deny(v.TOO_EARLY)
    if any(start < closes for start in today):
        return Decision.deny(v.TOO_LATE)
    if not in_hours(plan, now):
        return Decision.deny(v.OUTSIDE_HOURS)
    return Decision.deny(v.NO_APPOINTMENT)


def _assess_in_session(ctx: HandlerContext, endpoint: str, now: dt.datetime) -> Decision | Due:
    with ctx.sessions() as session:
        return assess(session, endpoint, now, ctx.settings.early_minutes, ctx.settings.late_minutes)


def _busy_in_session(ctx: HandlerContext) -> bool:
    with ctx.sessions() as session:
        return governor_busy(session.connection())


async def ask_code(call: AgiCall, candidates: tuple[Candidate, ...]) -> Candidate | None:
    """Up to CODE_TRIES GET DATA prompts; the candidate whose check-in code was keyed, or None."""
    for attempt in range(v.CODE_TRIES):
        prompt = v.PROMPT_ENTER_CODE if attempt == 0 else v.PROMPT_CODE_RETRY
        digits = await call.get_data(prompt, v.CODE_TIMEOUT_MS, v.CODE_DIGITS)
        if digits:
            for candidate in candidates:
                if hmac.compare_digest(digits.encode(), candidate.checkin_code.encode()):
                    return candidate
    return None


async def route_call(call: AgiCall, ctx: HandlerContext) -> Decision:
    endpoint = call.arg(1).strip()
    outcome = await ctx.in_db(_assess_in_session, ctx, endpoint, ctx.clock())
    if isinstance(outcome, Decision):
        return outcome

    busy = outcome.governor_busy
    if outcome.require_code:
        chosen = await ask_code(call, outcome.candidates)
        if chosen is None:
            return Decision.deny(v.BAD_CODE)
        busy = await ctx.in_db(_busy_in_session, ctx)  # the code took a while: look again
    else:
        chosen = outcome.candidates[0]

    remaining = int((chosen.slot_end - ctx.clock()).total_seconds())
    return Decision(
        decision=v.WAIT if busy else v.CONNECT,
        reason=v.GOVERNOR_BUSY if busy else v.OK,
        appointment_id=chosen.appointment_id,
        caller_name=chosen.caller_name,
        slot_seconds=max(60, remaining),
    )
