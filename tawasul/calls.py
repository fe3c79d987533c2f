"""Call records and the appointment's course through a call, from what Asterisk reports.

One Call row per call, keyed by Asterisk's linkedid. Every function here is idempotent: an event
seen twice (a watcher that reconnects and replays) changes nothing the second time, and a
status only moves forward (booked -> checked_in -> waiting -> in_session -> completed).
"""
from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import Appointment, AppointmentStatus, Call, Device, DeviceKind

S = AppointmentStatus
ORDER = [S.BOOKED, S.CHECKED_IN, S.WAITING, S.IN_SESSION, S.COMPLETED]
HANGUP_BY = ("citizen", "governor", "system")


def _advance(session: Session, appointment: Appointment | None, to: AppointmentStatus, why: str) -> None:
    """Move forward along ORDER only; cancelled, no-show and failed appointments stay as they are."""
    if appointment is None or appointment.status not in ORDER or to not in ORDER:
        return
    if ORDER.index(to) > ORDER.index(appointment.status):
        appointment.status = to
        audit.record(session, "asterisk", f"appointment.{to.value}", appointment, why=why)


def _call(session: Session, linkedid: str) -> Call:
    call = session.scalars(sa.select(Call).where(Call.uniqueid == linkedid)).first()
    if call is None:
        call = Call(uniqueid=linkedid)
        session.add(call)
    return call


def on_decision(session: Session, *, linkedid: str, channel: str, endpoint: str, decision: str,
                reason: str, appointment_id: int | None, at: dt.datetime) -> Call:
    """route_call decided for this call (reported by the dialplan)."""
    call = _call(session, linkedid)
    if not call.decision:
        device = session.scalars(sa.select(Device).where(Device.sip_user == endpoint)).first()
        call.channel, call.decision, call.reason = channel, decision, reason
        call.centre_id = device.centre_id if device else None
        call.appointment_id = appointment_id if decision in ("connect", "wait") else None
        call.ring_at = call.ring_at or at
    if decision == "wait":
        _advance(session, call.appointment, S.WAITING, "governor busy")
    session.flush()
    return call


def on_ringing(session: Session, *, linkedid: str, peer_channel: str, at: dt.datetime) -> None:
    """The governor's endpoint is being rung for this call."""
    call = _call(session, linkedid)
    call.peer_channel = call.peer_channel or peer_channel
    call.ring_at = call.ring_at or at


def on_answer(session: Session, *, linkedid: str, at: dt.datetime) -> None:
    call = _call(session, linkedid)
    if call.answer_at is None:
        call.answer_at = at
    _advance(session, call.appointment, S.IN_SESSION, "answered")


def who_hung_up(session: Session, source: str) -> str:
    """From Asterisk's CHANNEL(hangupsource): a centre phone's channel (the citizen), the governor
    desk's, or neither (empty, or `dialplan/...`: the dialplan ended it: a refusal, the slot's end)."""
    match = re.match(r"^PJSIP/(.+)-[0-9a-f]{8}$", source or "")
    device = match and session.scalars(sa.select(Device).where(Device.sip_user == match.group(1))).first()
    if not device:
        return "system"
    return "governor" if device.kind is DeviceKind.GOVERNOR_DESK else "citizen"


def on_hangup(session: Session, *, linkedid: str, at: dt.datetime, hangup_by: str | None = None,
              source: str = "", outcome: str = "") -> None:
    """The call is over. `hangup_by` (citizen, governor or system) or the hangup source to derive it."""
    call = _call(session, linkedid)
    if call.end_at is not None:
        return
    hangup_by = hangup_by or who_hung_up(session, source)
    call.end_at = at
    call.hangup_by = hangup_by if hangup_by in HANGUP_BY else "system"
    call.outcome = outcome or ("answered" if call.answer_at else
                               "denied" if call.decision == "deny" or not call.decision else "not_answered")
    if call.answer_at is not None:
        _advance(session, call.appointment, S.COMPLETED, "session ended")


def reconcile(session: Session, live_linkedids: set[str], now: dt.datetime) -> int:
    """After a gap in events: end every open call Asterisk no longer has. Returns how many."""
    open_calls = session.scalars(sa.select(Call).where(Call.end_at.is_(None))).all()
    ended = 0
    for call in open_calls:
        if call.uniqueid not in live_linkedids:
            on_hangup(session, linkedid=call.uniqueid, at=now, hangup_by="system",
                      outcome="answered" if call.answer_at else "lost")
            ended += 1
    return ended


def duration_seconds(call: Call) -> int | None:
    if call.answer_at is None or call.end_at is None:
        return None
    return int((call.end_at - call.answer_at).total_seconds())
