"""Call records from Asterisk's reports: one row per call, idempotent, statuses only move forward."""
import datetime as dt

import sqlalchemy as sa

from tawasul import calls
from tawasul.models import Appointment, AppointmentStatus, Call
from tests.unit.test_booking import SUNDAY, at, book_video

T0 = at(SUNDAY, 9, 1)


def later(seconds):
    return T0 + dt.timedelta(seconds=seconds)


def booked(db):
    with db.write() as session:
        return book_video(session, at(SUNDAY, 9)).id


def test_a_session_from_decision_to_hangup(demo_db):
    appointment_id = booked(demo_db)
    with demo_db.write() as session:
        calls.on_decision(session, linkedid="1700.1", channel="PJSIP/centre-bdr-1-00000001",
                          endpoint="centre-bdr-1", decision="connect", reason="ok",
                          appointment_id=appointment_id, at=T0)
        calls.on_ringing(session, linkedid="1700.1", peer_channel="PJSIP/governor-desk-1-00000002", at=later(1))
        calls.on_answer(session, linkedid="1700.1", at=later(3))
    with demo_db.read() as session:
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.IN_SESSION
    with demo_db.write() as session:
        calls.on_hangup(session, linkedid="1700.1", at=later(603), hangup_by="governor")
    with demo_db.read() as session:
        call = session.scalars(sa.select(Call)).one()
        assert (call.decision, call.outcome, call.hangup_by) == ("connect", "answered", "governor")
        assert call.centre_id is not None and call.peer_channel.startswith("PJSIP/governor-desk-1")
        assert (call.ring_at, call.answer_at, call.end_at) == (T0, later(3), later(603))
        assert calls.duration_seconds(call) == 600
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.COMPLETED


def test_events_seen_twice_change_nothing_the_second_time(demo_db):
    appointment_id = booked(demo_db)
    for _ in range(2):
        with demo_db.write() as session:
            calls.on_decision(session, linkedid="9.9", channel="c", endpoint="centre-bdr-1", decision="connect",
                              reason="ok", appointment_id=appointment_id, at=T0)
            calls.on_answer(session, linkedid="9.9", at=later(2))
            calls.on_hangup(session, linkedid="9.9", at=later(60), hangup_by="citizen")
    with demo_db.write() as session:
        calls.on_answer(session, linkedid="9.9", at=later(500))  # late replay
        call = session.scalars(sa.select(Call)).one()
        assert (call.answer_at, call.end_at, call.hangup_by) == (later(2), later(60), "citizen")
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.COMPLETED


def test_wait_marks_the_appointment_waiting_and_a_deny_keeps_no_appointment(demo_db):
    appointment_id = booked(demo_db)
    with demo_db.write() as session:
        calls.on_decision(session, linkedid="1.1", channel="c", endpoint="centre-bdr-1", decision="wait",
                          reason="governor_busy", appointment_id=appointment_id, at=T0)
        calls.on_decision(session, linkedid="2.2", channel="c", endpoint="centre-ynb-1", decision="deny",
                          reason="no_appointment", appointment_id=appointment_id, at=T0)
        calls.on_hangup(session, linkedid="2.2", at=later(5), hangup_by="system")
    with demo_db.read() as session:
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.WAITING
        denied = session.scalars(sa.select(Call).where(Call.uniqueid == "2.2")).one()
        assert denied.appointment_id is None and denied.outcome == "denied"


def test_an_unanswered_call_leaves_the_appointment_open_and_a_cancelled_one_is_never_revived(demo_db):
    appointment_id = booked(demo_db)
    with demo_db.write() as session:
        calls.on_decision(session, linkedid="3.3", channel="c", endpoint="centre-bdr-1", decision="connect",
                          reason="ok", appointment_id=appointment_id, at=T0)
        calls.on_hangup(session, linkedid="3.3", at=later(30), hangup_by="system")
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.BOOKED
        session.get(Appointment, appointment_id).status = AppointmentStatus.CANCELLED
        calls.on_answer(session, linkedid="3.3", at=later(31))
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.CANCELLED
        assert session.scalars(sa.select(Call)).one().outcome == "not_answered"


def test_reconcile_ends_calls_asterisk_no_longer_has(demo_db):
    appointment_id = booked(demo_db)
    with demo_db.write() as session:
        for linkedid in ("live.1", "gone.2"):
            calls.on_decision(session, linkedid=linkedid, channel="c", endpoint="centre-bdr-1",
                              decision="connect", reason="ok", appointment_id=appointment_id, at=T0)
            calls.on_answer(session, linkedid=linkedid, at=later(2))
        assert calls.reconcile(session, {"live.1"}, later(100)) == 1
        assert calls.reconcile(session, {"live.1"}, later(200)) == 0
        gone = session.scalars(sa.select(Call).where(Call.uniqueid == "gone.2")).one()
        assert gone.end_at == later(100) and gone.hangup_by == "system"
        assert session.scalars(sa.select(Call).where(Call.uniqueid == "live.1")).one().end_at is None


def test_who_hung_up_comes_from_the_hangup_source(demo_db):
    with demo_db.write() as session:
        for linkedid, source, expected in (("a", "PJSIP/centre-bdr-1-00000001", "citizen"),
                                           ("b", "PJSIP/governor-desk-1-00000002", "governor"),
                                           ("c", "dialplan/builtin", "system"), ("d", "", "system")):
            calls.on_decision(session, linkedid=linkedid, channel="PJSIP/centre-bdr-1-00000001",
                              endpoint="centre-bdr-1", decision="connect", reason="ok", appointment_id=None, at=T0)
            calls.on_ringing(session, linkedid=linkedid, peer_channel="PJSIP/governor-desk-1-00000002", at=T0)
            calls.on_hangup(session, linkedid=linkedid, at=later(9), source=source)
            assert session.scalars(sa.select(Call).where(Call.uniqueid == linkedid)).one().hangup_by == expected
