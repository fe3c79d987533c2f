"""Booking rules, on SQLite and on PostgreSQL (the `db` fixture runs each test on both)."""
import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tawasul import booking, scheduling
from tawasul.models import Appointment, AppointmentKind, AppointmentStatus, AuditEntry, GovernorSchedule, Holiday
from tawasul.validation import InvalidInput, make_national_id

RIYADH = ZoneInfo("Asia/Riyadh")
SUNDAY = dt.date(2026, 12, 6)
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=RIYADH).astimezone(dt.timezone.utc)


def citizen(session, n: int = 1):
    return booking.find_or_register_citizen(session, make_national_id("1", f"{n:08d}"),
                                            f"مواطن {n}", "0501234567")


def book_video(session, when, n=1, centre="BDR", now=NOW):
    return booking.book(session, citizen=citizen(session, n), kind=AppointmentKind.VIDEO, at=when,
                        centre=booking.centre_by_code(session, centre), actor="test", now=now)


def test_the_demo_schedule_has_nine_video_slots_on_a_sunday_and_none_on_friday(demo_db):
    with demo_db.read() as session:
        plan = booking.schedule(session)
        slots = scheduling.video_slots(plan, SUNDAY)
        assert [s.astimezone(RIYADH).strftime("%H:%M") for s in slots] == [
            "09:00", "09:20", "09:40", "10:00", "10:20", "10:40", "11:00", "11:20", "11:40"]
        assert slots[0] == dt.datetime(2026, 12, 6, 6, 0, tzinfo=dt.timezone.utc)
        assert scheduling.video_slots(plan, dt.date(2026, 12, 4)) == []


def test_a_holiday_has_no_slots_from_the_next_request_on(demo_db):
    with demo_db.read() as first, demo_db.read() as second:
        before = booking.schedule(first)
        assert booking.schedule(second) is before  # unchanged: one copy serves every request
    with demo_db.write() as session:
        plan = session.scalars(sa.select(GovernorSchedule)).one()
        plan.holidays.append(Holiday(day=SUNDAY, name="عطلة"))
    with demo_db.read() as session:
        assert scheduling.video_slots(booking.schedule(session), SUNDAY) == []
    assert len(scheduling.video_slots(before, SUNDAY)) == 9


def test_booking_gives_a_reference_and_code_and_an_audit_entry(demo_db):
    with demo_db.write() as session:
        appointment = book_video(session, at(SUNDAY, 9))
        reference = appointment.reference
    with demo_db.read() as session:
        stored = booking.by_reference(session, reference)
        assert stored.status is AppointmentStatus.BOOKED
        assert stored.centre.code == "BDR" and len(stored.checkin_code) == 6
        assert stored.slot_start == at(SUNDAY, 9)
        actions = session.scalars(sa.select(AuditEntry.action)).all()
        assert "appointment.book" in actions


@pytest.mark.parametrize("when, field, message", [
    (at(SUNDAY, 9, 5), "at", "not one of the governor's session slots"),
    (at(dt.date(2026, 12, 4), 9), "at", "not one of"),
    (at(dt.date(2026, 11, 29), 9), "at", "in the past"),
])
def test_bad_times_are_refused_and_nothing_is_written(demo_db, when, field, message):
    with pytest.raises(InvalidInput) as refused:
        with demo_db.write() as session:
            book_video(session, when)
    assert refused.value.field == field and message in refused.value.message
    with demo_db.read() as session:
        assert session.scalar(sa.select(sa.func.count(Appointment.id))) == 0


def test_a_taken_slot_is_refused_and_a_cancelled_one_is_free_again(demo_db):
    with demo_db.write() as session:
        first = book_video(session, at(SUNDAY, 9), n=1)
    with pytest.raises(booking.SlotTaken):
        with demo_db.write() as session:
            book_video(session, at(SUNDAY, 9), n=2, centre="YNB")
    with demo_db.write() as session:
        booking.cancel(session, session.get(Appointment, first.id), "citizen travelling", actor="test")
    with demo_db.write() as session:
        assert book_video(session, at(SUNDAY, 9), n=2, centre="YNB").status is AppointmentStatus.BOOKED


def test_the_database_itself_refuses_a_second_holder_of_a_slot(demo_db):
    with demo_db.write() as session:
        first = book_video(session, at(SUNDAY, 9))
    with pytest.raises(IntegrityError):
        with demo_db.write() as session:
            session.add(Appointment(reference="A-TEST-TEST-TEST", checkin_code="000000",
                                    citizen_id=first.citizen_id, kind=AppointmentKind.VIDEO,
                                    slot_start=first.slot_start, slot_minutes=15, seat=1))


def test_cancel_needs_a_reason_and_an_active_appointment(demo_db):
    with demo_db.write() as session:
        appointment = book_video(session, at(SUNDAY, 9))
        with pytest.raises(InvalidInput, match="reason"):
            booking.cancel(session, appointment, "  ", actor="test")
        booking.cancel(session, appointment, "no longer needed", actor="test")
        with pytest.raises(InvalidInput, match="cancelled appointment cannot be cancelled"):
            booking.cancel(session, appointment, "again", actor="test")


def test_reschedule_keeps_the_reference_and_frees_the_old_slot(demo_db):
    with demo_db.write() as session:
        appointment = book_video(session, at(SUNDAY, 9))
        reference = appointment.reference
        booking.reschedule(session, appointment, at(SUNDAY, 10), actor="test", now=NOW)
    with demo_db.write() as session:
        assert booking.by_reference(session, reference).slot_start == at(SUNDAY, 10)
        book_video(session, at(SUNDAY, 9), n=2)


def test_reschedule_into_a_taken_slot_changes_nothing(demo_db):
    with demo_db.write() as session:
        mine = book_video(session, at(SUNDAY, 9), n=1)
        book_video(session, at(SUNDAY, 10), n=2)
    with pytest.raises(booking.SlotTaken):
        with demo_db.write() as session:
            booking.reschedule(session, session.get(Appointment, mine.id), at(SUNDAY, 10), "test", now=NOW)
    with demo_db.read() as session:
        assert session.get(Appointment, mine.id).slot_start == at(SUNDAY, 9)


def test_check_in_then_due_window(demo_db):
    with demo_db.write() as session:
        appointment = book_video(session, at(SUNDAY, 9))
        booking.check_in(session, appointment, actor="desk", now=at(SUNDAY, 8, 45))
        assert appointment.status is AppointmentStatus.CHECKED_IN
        with pytest.raises(InvalidInput, match="checked_in appointment cannot be checked in"):
            booking.check_in(session, appointment, actor="desk", now=at(SUNDAY, 8, 46))
        badr = booking.centre_by_code(session, "BDR")
        yanbu = booking.centre_by_code(session, "YNB")
        due = lambda centre, when: booking.due_at(session, centre, when, early_minutes=10, late_minutes=15)
        assert due(badr, at(SUNDAY, 8, 50)) == [appointment]
        assert due(badr, at(SUNDAY, 9, 15)) == [appointment]
        assert due(badr, at(SUNDAY, 8, 49)) == []
        assert due(badr, at(SUNDAY, 9, 16)) == []
        assert due(yanbu, at(SUNDAY, 9)) == []


def test_in_person_attendance_has_a_daily_capacity(demo_db):
    with demo_db.write() as session:
        session.scalars(sa.select(GovernorSchedule)).one().in_person_capacity = 2
    with demo_db.write() as session:
        seats = [booking.book(session, citizen=citizen(session, n), kind=AppointmentKind.IN_PERSON,
                              at=at(SUNDAY, 0), actor="test", now=NOW).seat for n in (1, 2)]
        assert seats == [1, 2]
    with pytest.raises(booking.SlotTaken, match="full"):
        with demo_db.write() as session:
            booking.book(session, citizen=citizen(session, 3), kind=AppointmentKind.IN_PERSON,
                         at=at(SUNDAY, 0), actor="test", now=NOW)


def test_a_video_session_needs_a_centre(demo_db):
    with demo_db.write() as session:
        with pytest.raises(InvalidInput, match="reception centre"):
            booking.book(session, citizen=citizen(session), kind=AppointmentKind.VIDEO,
                         at=at(SUNDAY, 9), actor="test", now=NOW)


def test_twenty_concurrent_bookings_of_one_slot_give_exactly_one_appointment(demo_db):
    barrier = threading.Barrier(20)
    outcomes = []

    def attempt(n):
        barrier.wait()
        try:
            with demo_db.write() as session:
                book_video(session, at(SUNDAY, 9), n=n)
            outcomes.append("booked")
        except booking.SlotTaken:
            outcomes.append("taken")
        except Exception as exc:  # any other failure is a defect
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["booked"] + ["taken"] * 19
    with demo_db.read() as session:
        assert session.scalar(sa.select(sa.func.count(Appointment.id))) == 1
