"""route_call: may this centre phone reach the governor now, and with which appointment?

Dialplan: AGI(agi://HOST:PORT/route_call,${CHANNEL(endpoint)}). The first argument is the
authenticated PJSIP endpoint (the device's sip_user), never the caller ID.

Read-only: nothing is written to the database (state transitions come later).
"""
from __future__ import annotations

import asyncio
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
    Device,
    DeviceKind,
    GovernorSchedule,
)

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


def in_hours(plan: GovernorSchedule, now: dt.datetime) -> bool:
    """A session day (not a holiday), between the start and the end of video sessions, local time."""
    day = scheduling.local_day(plan, now)
    if not scheduling.is_session_day(plan, day):
        return False
    zone = scheduling.zone(plan)
    start = dt.datetime.combine(day, plan.video_start, tzinfo=zone)
    end = dt.datetime.combine(day, plan.video_end, tzinfo=zone)
    return start <= now < end


def governor_busy(session: Session) -> bool:
    return session.scalar(sa.select(sa.func.count(Appointment.id)).where(
        Appointment.status == AppointmentStatus.IN_SESSION)) > 0


def caller_name(appointment: Appointment) -> str:
    # Shown on the governor's phone. Never the national ID.
    return f"{appointment.citizen.name} {appointment.reference}"


def assess(session: Session, endpoint: str, now: dt.datetime, early: int, late: int) -> Decision | Due:
    """The database half of the decision (runs in a worker thread)."""
    device = session.scalars(sa.select(Device).where(Device.sip_user == endpoint)).first() if endpoint else None
    centre = device.centre if device is not None else None
    if (device is None or not device.enabled or device.kind is not DeviceKind.CENTRE_PHONE
            or centre is None or not centre.active):
        return Decision.deny(v.UNKNOWN_DEVICE)

    due = booking.due_at(session, centre, now, early, late)
    if due:
        return Due(
            candidates=tuple(Candidate(a.id, a.checkin_code, caller_name(a), a.slot_end) for a in due),
            require_code=centre.require_code or len(due) > 1,
            governor_busy=governor_busy(session),
        )

    # A citizen with a booking here today hears why this is not the moment, even outside hours.
    plan = booking.schedule(session)
    today = [a for a in booking.on_day(session, scheduling.local_day(plan, now))
             if a.centre_id == centre.id and a.kind is AppointmentKind.VIDEO and a.status in booking.ACTIVE]
    if any(a.slot_start > now + dt.timedelta(minutes=early) for a in today):
        return Decision.deny(v.TOO_EARLY)
    if any(a.slot_start < now - dt.timedelta(minutes=late) for a in today):
        return Decision.deny(v.TOO_LATE)
    if not in_hours(plan, now):
        return Decision.deny(v.OUTSIDE_HOURS)
    return Decision.deny(v.NO_APPOINTMENT)


def _assess_in_session(ctx: HandlerContext, endpoint: str, now: dt.datetime) -> Decision | Due:
    with ctx.sessions() as session:
        return assess(session, endpoint, now, ctx.settings.early_minutes, ctx.settings.late_minutes)


def _busy_in_session(ctx: HandlerContext) -> bool:
    with ctx.sessions() as session:
        return governor_busy(session)


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
    outcome = await asyncio.to_thread(_assess_in_session, ctx, endpoint, ctx.clock())
    if isinstance(outcome, Decision):
        return outcome

    busy = outcome.governor_busy
    if outcome.require_code:
        chosen = await ask_code(call, outcome.candidates)
        if chosen is None:
            return Decision.deny(v.BAD_CODE)
        busy = await asyncio.to_thread(_busy_in_session, ctx)  # the code took a while: look again
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
