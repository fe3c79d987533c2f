"""route_call over a real loopback socket, as Asterisk asks it, on SQLite and PostgreSQL."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging

import pytest
import sqlalchemy as sa

from agi import variables as v
from agi.call import HandlerContext, SQLiteReader
from tawasul import booking
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEntry,
    Device,
    GovernorSchedule,
    Holiday,
)
from tawasul.validation import make_national_id
from tests.unit.test_agi_server import BOOKED_ON, SUNDAY, ServerThread, agi_call, at

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self, moment: dt.datetime):
        self.now = moment

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock(at(SUNDAY, 9, 5))


@pytest.fixture(params=["db-thread", "db-inline"])
def server(demo_db, settings, clock, request):
    """The server as `tawasul agi serve` runs it: a pooled connection a call in a worker thread (what it
    does with PostgreSQL), or database work on the event loop, on one kept connection with SQLite."""
    inline = request.param == "db-inline"
    reader = SQLiteReader(demo_db.url) if inline and demo_db.engine.dialect.name == "sqlite" else None
    running = ServerThread(HandlerContext(settings=settings, connect=reader.connect if reader else demo_db.engine.connect,
                                          clock=clock, db_inline=inline, write=demo_db.write))
    yield running
    running.close()
    if reader is not None:
        reader.dispose()


def book(db, when, centre="BDR", n=1, status=None):
    """Book a video session; returns (id, reference, code, national ID, name)."""
    national_id = make_national_id("1", f"{n:08d}")
    with db.write() as session:
        citizen = booking.find_or_register_citizen(session, national_id, f"مواطن رقم {n}", "0501234567")
        appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=when,
                                   centre=booking.centre_by_code(session, centre), actor="test", now=BOOKED_ON)
        if status is not None:
            appointment.status = status
        return appointment.id, appointment.reference, appointment.checkin_code, national_id, citizen.name


def require_code(db, code="BDR"):
    with db.write() as session:
        booking.centre_by_code(session, code).require_code = True


def audit_count(db) -> int:
    with db.read() as session:
        return session.scalar(sa.select(sa.func.count(AuditEntry.id)))


def deny(reason):
    return {v.TAWASUL_REASON: reason, v.TAWASUL_DECISION: v.DENY}


def test_booked_now_at_this_centre_connects_with_name_and_reference_never_the_national_id(demo_db, server, clock):
    appointment_id, reference, _code, national_id, name = book(demo_db, at(SUNDAY, 9))
    audit_entries = audit_count(demo_db)
    result = agi_call(server.port, "centre-bdr-1")
    assert result.variables == {
        v.TAWASUL_APPOINTMENT: str(appointment_id),
        v.TAWASUL_CALLER_NAME: f"{name} {reference}",
        v.TAWASUL_SLOT_SECONDS: str(10 * 60),  # 09:05 -> slot end 09:15
        v.TAWASUL_REASON: v.OK,
        v.TAWASUL_DECISION: v.CONNECT,
    }
    # all in one command, the decision last (a call dropped half-way never holds a bare connect)
    assert result.commands[-1].startswith("EXEC MSet ") and result.commands[-1].endswith(
        f',{v.TAWASUL_REASON}={v.OK},{v.TAWASUL_DECISION}={v.CONNECT}"')
    assert not any(national_id in command for command in result.commands)
    assert not any(c.startswith("GET DATA") for c in result.commands)  # no code needed here

    clock.now = at(SUNDAY, 9, 14, 30)  # late in the window: at least a minute
    assert agi_call(server.port, "centre-bdr-1").variables[v.TAWASUL_SLOT_SECONDS] == "60"
    clock.now = at(SUNDAY, 8, 50)  # early in the window
    assert agi_call(server.port, "centre-bdr-1").decision == v.CONNECT
    with demo_db.read() as session:  # the decision is read-only
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.BOOKED
    assert audit_count(demo_db) == audit_entries


def test_a_session_booked_at_another_centre_does_not_open_this_one(demo_db, server):
    book(demo_db, at(SUNDAY, 9), centre="YNB")
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.NO_APPOINTMENT)
    assert agi_call(server.port, "centre-ynb-1").decision == v.CONNECT


def test_too_early_and_too_late(demo_db, server, clock):
    book(demo_db, at(SUNDAY, 10), n=1)
    clock.now = at(SUNDAY, 9, 30)
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.TOO_EARLY)
    clock.now = at(SUNDAY, 10, 16)
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.TOO_LATE)
    clock.now = at(SUNDAY, 9, 49)  # one minute before the window opens
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.TOO_EARLY)
    clock.now = at(SUNDAY, 9, 50)
    assert agi_call(server.port, "centre-bdr-1").decision == v.CONNECT


def test_a_citizen_calling_before_the_day_opens_hears_too_early_not_closed(demo_db, server, clock):
    book(demo_db, at(SUNDAY, 9), n=1)
    clock.now = at(SUNDAY, 8, 30)
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.TOO_EARLY)
    assert agi_call(server.port, "centre-ynb-1").variables == deny(v.OUTSIDE_HOURS)


def test_outside_the_governors_hours_and_days(demo_db, server, clock):
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.NO_APPOINTMENT)  # Sunday 09:05
    for moment in (at(SUNDAY, 7), at(SUNDAY, 12, 30), at(dt.date(2026, 12, 4), 9, 5)):  # Friday
        clock.now = moment
        assert agi_call(server.port, "centre-bdr-1").variables == deny(v.OUTSIDE_HOURS)


def test_unknown_disabled_and_non_centre_devices_are_denied(demo_db, server):
    book(demo_db, at(SUNDAY, 9))
    with demo_db.write() as session:
        session.scalars(sa.select(Device).where(Device.sip_user == "centre-ynb-1")).one().enabled = False
    for endpoint in ("centre-nowhere-1", "governor-desk-1", "centre-ynb-1", "", "1101",
                     "centre-bdr-1' OR '1'='1"):
        assert agi_call(server.port, endpoint).variables == deny(v.UNKNOWN_DEVICE), endpoint
    assert agi_call(server.port, None).variables == deny(v.UNKNOWN_DEVICE)  # no argument at all


def test_a_centre_that_requires_the_code_connects_on_the_second_try(demo_db, server):
    appointment_id, _reference, code, _nid, _name = book(demo_db, at(SUNDAY, 9))
    require_code(demo_db)
    wrong = "000000" if code != "000000" else "111111"
    result = agi_call(server.port, "centre-bdr-1", digits=[wrong, code])
    assert result.decision == v.CONNECT
    assert result.variables[v.TAWASUL_APPOINTMENT] == str(appointment_id)
    asked = [c for c in result.commands if c.startswith("GET DATA")]
    assert asked == [f"GET DATA {v.PROMPT_ENTER_CODE} {v.CODE_TIMEOUT_MS} {v.CODE_DIGITS}",
                     f"GET DATA {v.PROMPT_CODE_RETRY} {v.CODE_TIMEOUT_MS} {v.CODE_DIGITS}"]


def test_three_wrong_codes_are_denied(demo_db, server):
    _id, _reference, code, _nid, _name = book(demo_db, at(SUNDAY, 9))
    require_code(demo_db)
    wrong = "000000" if code != "000000" else "111111"
    result = agi_call(server.port, "centre-bdr-1", digits=[wrong, "", code[:3]])
    assert result.variables == deny(v.BAD_CODE)
    assert sum(c.startswith("GET DATA") for c in result.commands) == v.CODE_TRIES


def test_two_sessions_due_at_once_are_told_apart_by_their_code(demo_db, server, clock):
    first = book(demo_db, at(SUNDAY, 9), n=1)
    second = book(demo_db, at(SUNDAY, 9, 20), n=2)
    clock.now = at(SUNDAY, 9, 12)  # late for the first, early for the second
    result = agi_call(server.port, "centre-bdr-1", digits=[second[2]])
    assert result.decision == v.CONNECT
    assert result.variables[v.TAWASUL_APPOINTMENT] == str(second[0])
    assert result.variables[v.TAWASUL_CALLER_NAME] == f"{second[4]} {second[1]}"
    assert agi_call(server.port, "centre-bdr-1", digits=[first[2]]).variables[v.TAWASUL_APPOINTMENT] == str(first[0])


def test_the_governor_in_another_session_means_wait(demo_db, server, clock):
    book(demo_db, at(SUNDAY, 9), centre="YNB", n=1, status=AppointmentStatus.IN_SESSION)
    appointment_id, reference, _code, _nid, name = book(demo_db, at(SUNDAY, 9, 20), n=2)
    clock.now = at(SUNDAY, 9, 12)
    assert agi_call(server.port, "centre-bdr-1").variables == {
        v.TAWASUL_APPOINTMENT: str(appointment_id),
        v.TAWASUL_CALLER_NAME: f"{name} {reference}",
        v.TAWASUL_SLOT_SECONDS: str(23 * 60),
        v.TAWASUL_REASON: v.GOVERNOR_BUSY,
        v.TAWASUL_DECISION: v.WAIT,
    }


def test_hanging_up_at_the_code_prompt_ends_cleanly(demo_db, server, caplog):
    _id, _reference, code, _nid, _name = book(demo_db, at(SUNDAY, 9))
    require_code(demo_db)
    caplog.set_level(logging.INFO)
    assert agi_call(server.port, "centre-bdr-1", digits=[]).variables == {}  # hangs up at GET DATA
    assert agi_call(server.port, "centre-bdr-1", digits=["-1"]).variables == {}  # Asterisk: -1 on hangup
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("channel gone before a decision" in r.getMessage() for r in caplog.records) == 2
    assert agi_call(server.port, "centre-bdr-1", digits=[code]).decision == v.CONNECT


def wrong_codes(code: str, n: int) -> list[str]:
    return [f"{(int(code) + k) % 1_000_000:06d}" for k in range(1, n + 1)]


def code_failures(db, appointment_id) -> int:
    with db.read() as session:
        return session.get(Appointment, appointment_id).code_failures


def test_wrong_codes_are_limited_per_appointment_across_connections(demo_db, server):
    """A guesser gets 3 tries a call, but any number of calls: the appointment counts the wrong codes in
    all, and at 5 takes no call, the right code included, until the desk checks the citizen in."""
    appointment_id, _reference, code, _nid, _name = book(demo_db, at(SUNDAY, 9))
    require_code(demo_db)
    guesses = wrong_codes(code, 12)
    # Four calls at once, each on its own connection, three wrong codes each.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda k: agi_call(server.port, "centre-bdr-1", digits=guesses[3 * k:3 * k + 3]),
                                range(4)))
    assert all(r.decision == v.DENY for r in results)
    assert {r.reason for r in results} <= {v.BAD_CODE, v.CODE_LOCKED} and v.CODE_LOCKED in {r.reason for r in results}
    assert code_failures(demo_db, appointment_id) == booking.WRONG_CODE_LIMIT  # 12 keyed, 5 counted
    # The right code now: refused without a prompt; the caller is sent to the desk.
    locked = agi_call(server.port, "centre-bdr-1", digits=[code])
    assert locked.variables == deny(v.CODE_LOCKED)
    assert not any(c.startswith("GET DATA") for c in locked.commands)
    with demo_db.read() as session:
        assert session.scalar(sa.select(sa.func.count(AuditEntry.id)).where(
            AuditEntry.action == "appointment.code_locked", AuditEntry.entity_id == str(appointment_id))) == 1
    # Staff check the citizen in at the desk: the count starts again, and the right code connects.
    with demo_db.write() as session:
        booking.check_in(session, session.get(Appointment, appointment_id), actor="staff", now=at(SUNDAY, 9, 5))
    assert code_failures(demo_db, appointment_id) == 0
    result = agi_call(server.port, "centre-bdr-1", digits=[guesses[0], code])
    assert result.decision == v.CONNECT and code_failures(demo_db, appointment_id) == 1
    # Each prompt gets its own bound in the dialplan, put back to the short one after it.
    assert result.deadlines == [str(v.CODE_PROMPT_SECONDS), str(v.ANSWER_SECONDS)] * 2


def test_a_checked_in_appointment_locked_by_wrong_codes_is_unlocked_by_checking_in_again(demo_db, server):
    appointment_id, _reference, code, _nid, _name = book(demo_db, at(SUNDAY, 9))
    require_code(demo_db)
    with demo_db.write() as session:
        booking.check_in(session, session.get(Appointment, appointment_id), actor="staff", now=at(SUNDAY, 8, 50))
    guesses = wrong_codes(code, 5)
    assert agi_call(server.port, "centre-bdr-1", digits=guesses[:3]).variables == deny(v.BAD_CODE)
    assert agi_call(server.port, "centre-bdr-1", digits=guesses[3:]).variables == deny(v.CODE_LOCKED)
    with demo_db.write() as session:
        booking.check_in(session, session.get(Appointment, appointment_id), actor="staff", now=at(SUNDAY, 9, 5))
        assert session.get(Appointment, appointment_id).status is AppointmentStatus.CHECKED_IN
    assert agi_call(server.port, "centre-bdr-1", digits=[code]).decision == v.CONNECT


def set_status(db, appointment_id, status):
    with db.write() as session:
        session.get(Appointment, appointment_id).status = status


def test_every_call_is_decided_on_what_was_committed_just_before(demo_db, server, clock):
    """The server keeps one database connection (SQLite): no call may be decided on an older state."""
    clock.now = at(SUNDAY, 9, 12)
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.NO_APPOINTMENT)
    appointment_id, *_ = book(demo_db, at(SUNDAY, 9, 20), n=1)
    assert agi_call(server.port, "centre-bdr-1").decision == v.CONNECT
    elsewhere, *_ = book(demo_db, at(SUNDAY, 9), centre="YNB", n=2, status=AppointmentStatus.IN_SESSION)
    assert agi_call(server.port, "centre-bdr-1").reason == v.GOVERNOR_BUSY
    set_status(demo_db, elsewhere, AppointmentStatus.COMPLETED)
    assert agi_call(server.port, "centre-bdr-1").decision == v.CONNECT
    set_status(demo_db, appointment_id, AppointmentStatus.CANCELLED)
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.NO_APPOINTMENT)


def test_a_holiday_is_outside_the_governors_hours(demo_db, server, clock):
    with demo_db.write() as session:
        plan = session.scalars(sa.select(GovernorSchedule)).one()
        session.add(Holiday(schedule=plan, day=SUNDAY, name="test"))
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.OUTSIDE_HOURS)  # Sunday 09:05
    clock.now = at(SUNDAY + dt.timedelta(days=1), 9, 5)  # Monday, a session day
    assert agi_call(server.port, "centre-bdr-1").variables == deny(v.NO_APPOINTMENT)
