"""route_call: may this centre phone reach the governor now, and with which appointment?

Dialplan ([tawasul-decide]): AGI(agi://HOST:PORT/route_call,<endpoint>), the argument being the
authenticated PJSIP endpoint (the device's sip_user, ${CHANNEL(endpoint)}), never the caller ID. The
dialplan waits for the decision a few seconds only (variables.ANSWER_SECONDS); the booking-code prompts
extend that, one prompt at a time.

Nothing is written to the database but the count of wrong check-in codes on an appointment
(booking.try_checkin_code); state transitions are the call watcher's.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from agi import variables as v
from agi.call import AgiCall, Decision, HandlerContext
from agi.prepared import Prepared
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
    session_weekdays,
)
from tawasul.validation import InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """An appointment due at the calling centre, as plain data (no ORM object leaves the thread)."""

    appointment_id: int
    caller_name: str
    slot_end: dt.datetime


@dataclass(frozen=True)
class Due:
    candidates: tuple[Candidate, ...]
    require_code: bool
    governor_busy: bool


def _sql_literal(status: AppointmentStatus):
    return sa.literal_column(f"'{status.value}'")


# Built once: this runs for every call, and building a statement costs more than running it.
_FIRST_PLAN = sa.select(sa.func.min(GovernorSchedule.id)).correlate(None).scalar_subquery()
_in_session = aliased(Appointment)
_BUSY = sa.exists().where(_in_session.status == AppointmentStatus.IN_SESSION)
_DUE = sa.and_(Appointment.slot_start >= sa.bindparam("closes"), Appointment.slot_start <= sa.bindparam("opens"))
# One statement a call: the active centre of the enabled centre phone `endpoint` (no row: not one), the
# governor's schedule (NULLs: none set up), and the centre's active video appointments within a day either
# side of now, a superset of the local day (one row of NULLs: none). For an appointment due now (the window
# booking.due_at uses), whether the governor is in a session: the scan this takes runs only then.
# Prepared: run on the driver's cursor, since SQLAlchemy's execute costs twice what the statement does.
_CALL = Prepared(sa.select(Centre.require_code, GovernorSchedule.id.label("plan_id"), GovernorSchedule.timezone,
                          GovernorSchedule.session_days, GovernorSchedule.video_start, GovernorSchedule.video_end,
                          Appointment.id, Appointment.code_failures, Appointment.slot_start, Appointment.slot_minutes,
                          Appointment.reference, Citizen.name, sa.case((_DUE, _BUSY)).label("due_and_busy"))
                .select_from(Device)
                .join(Centre, Centre.id == Device.centre_id)
                .outerjoin(GovernorSchedule, GovernorSchedule.id == _FIRST_PLAN)
                .outerjoin(Appointment, sa.and_(
                    Appointment.centre_id == Centre.id, Appointment.kind == AppointmentKind.VIDEO,
                    # Implied by the next line, but written out, as a literal, so that SQLite serves the range from
                    # the partial index on (kind, slot_start) (video rows only) rather than the one on slot_start.
                    Appointment.status != _sql_literal(AppointmentStatus.CANCELLED),
                    Appointment.status.in_([_sql_literal(status) for status in booking.ACTIVE]),
                    Appointment.slot_start >= sa.bindparam("since"), Appointment.slot_start <= sa.bindparam("until")))
                .outerjoin(Citizen, Citizen.id == Appointment.citizen_id)
                .where(Device.sip_user == sa.bindparam("endpoint"), Device.enabled,
                       Device.kind == DeviceKind.CENTRE_PHONE, Centre.active)
                .order_by(Appointment.slot_start, Appointment.id))
_GOVERNOR_BUSY = sa.select(_BUSY)
_HOLIDAY = sa.select(sa.exists().where(Holiday.schedule_id == sa.bindparam("plan"), Holiday.day == sa.bindparam("day")))


def governor_busy(db: sa.Connection) -> bool:
    return db.execute(_GOVERNOR_BUSY).scalar()


def in_hours(db: sa.Connection, plan, now: dt.datetime) -> bool:
    """A session day (not a holiday), between the start and the end of video sessions, local time."""
    day = scheduling.local_day(plan, now)
    if day.weekday() not in session_weekdays(plan.session_days):
        return False
    zone = scheduling.zone(plan)
    start = dt.datetime.combine(day, plan.video_start, tzinfo=zone)
    end = dt.datetime.combine(day, plan.video_end, tzinfo=zone)
    return start <= now < end and not db.execute(_HOLIDAY, {"plan": plan.plan_id, "day": day}).scalar()


def assess(db: sa.Connection, endpoint: str, now: dt.datetime, early: int, late: int) -> Decision | Due:
    """The database half of the decision (HandlerContext.in_db runs it): one prebuilt statement, a second
    only when nothing is booked here today (is today a holiday?). No ORM: this runs for every call."""
    day, early, late = dt.timedelta(days=1), dt.timedelta(minutes=early), dt.timedelta(minutes=late)
    rows = _CALL.all(db, {"endpoint": endpoint, "since": now - day, "until": now + day,
                          "closes": now - late, "opens": now + early}) if endpoint else []
    if not rows:
        return Decision.deny(v.UNKNOWN_DEVICE)
    plan = rows[0]
    due = [r for r in rows if r.due_and_busy is not None]
    if due:
        # Locked by wrong codes: no call until the desk checks the citizen in. It still counts towards asking
        # for a code (the caller could be its citizen, so another's appointment is not open without one).
        open_ = [r for r in due if r.code_failures < booking.WRONG_CODE_LIMIT]
        if not open_:
            return Decision.deny(v.CODE_LOCKED)
        return Due(
            # The caller name is shown on the governor's phone: the citizen's name and reference, never the ID.
            candidates=tuple(Candidate(r.id, f"{r.name} {r.reference}",
                                       r.slot_start + dt.timedelta(minutes=r.slot_minutes)) for r in open_),
            require_code=plan.require_code or len(due) > 1,
            governor_busy=bool(due[0].due_and_busy),
        )

    # A citizen with a booking here today hears why this is not the moment, even outside hours.
    if plan.plan_id is None:
        raise InvalidInput("schedule", "no governor's schedule is set up yet")
    day_start = dt.datetime.combine(scheduling.local_day(plan, now), dt.time(0), tzinfo=scheduling.zone(plan))
    today = [r.slot_start for r in rows if r.id is not None and day_start <= r.slot_start < day_start + day]
    if any(start > now + early for start in today):
        return Decision.deny(v.TOO_EARLY)
    if any(start < now - late for start in today):
        return Decision.deny(v.TOO_LATE)
    if not in_hours(db, plan, now):
        return Decision.deny(v.OUTSIDE_HOURS)
    return Decision.deny(v.NO_APPOINTMENT)


def _assess(ctx: HandlerContext, endpoint: str, now: dt.datetime) -> Decision | Due:
    with ctx.connect() as db:
        return assess(db, endpoint, now, ctx.settings.early_minutes, ctx.settings.late_minutes)


def _busy(ctx: HandlerContext) -> bool:
    with ctx.connect() as db:
        return governor_busy(db)


async def ask_code(call: AgiCall, ctx: HandlerContext, candidates: tuple[Candidate, ...]) -> Candidate | str:
    """Up to CODE_TRIES GET DATA prompts: the candidate whose check-in code was keyed, or the deny reason.
    Each keyed code is tried in the database (booking.try_checkin_code counts the wrong ones on the
    appointments); the dialplan's bound on the wait is extended for each prompt and put back after."""
    by_id = {c.appointment_id: c for c in candidates}
    await call.answer()  # a ringing channel has no media yet: the caller would neither hear the prompt nor key
    for attempt in range(v.CODE_TRIES):
        prompt = v.PROMPT_ENTER_CODE if attempt == 0 else v.PROMPT_CODE_RETRY
        await call.set_deadline(v.CODE_PROMPT_SECONDS)
        digits = await call.get_data(prompt, v.CODE_TIMEOUT_MS, v.CODE_DIGITS)
        await call.set_deadline(v.ANSWER_SECONDS)
        if digits:
            chosen, still_open = await ctx.in_write(booking.try_checkin_code, tuple(by_id), digits)
            if chosen is not None:
                return by_id[chosen]
            if not still_open:
                return v.CODE_LOCKED
    return v.BAD_CODE


async def route_call(call: AgiCall, ctx: HandlerContext) -> Decision:
    endpoint = call.arg(1).strip()
    outcome = await ctx.in_db(_assess, ctx, endpoint, ctx.clock())
    if isinstance(outcome, Decision):
        return outcome

    busy = outcome.governor_busy
    if outcome.require_code:
        chosen = await ask_code(call, ctx, outcome.candidates)
        if isinstance(chosen, str):
            return Decision.deny(chosen)
        busy = await ctx.in_db(_busy, ctx)  # the code took a while: look again
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
