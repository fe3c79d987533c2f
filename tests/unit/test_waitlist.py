"""Free slots, full days, the waitlist and the outbox: core rules on SQLite and PostgreSQL."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tawasul import booking, outbox, waitlist
from tawasul.models import AppointmentKind, GovernorSchedule, OutboxMessage, WaitlistStatus
from tawasul.validation import InvalidInput, make_national_id

RIYADH = ZoneInfo("Asia/Riyadh")
SUNDAY = dt.date(2026, 12, 6)
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def at(hour, minute=0, day=SUNDAY):
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=RIYADH).astimezone(dt.UTC)


def person(session, n):
    return booking.find_or_register_citizen(session, make_national_id("1", f"{n:08d}"), f"مواطن {n}", "0501234567")


def test_free_video_slots_leave_out_taken_and_past_ones(demo_db):
    with demo_db.write() as session:
        booking.book(session, citizen=person(session, 1), kind=AppointmentKind.VIDEO, at=at(9, 20),
                     centre=booking.centre_by_code(session, "BDR"), actor="test", now=NOW)
        free = booking.free_video_slots(session, SUNDAY, NOW)
        assert at(9, 20) not in free and len(free) == 8
        # a running slot can still be booked until it ends, as booking.book allows
        assert booking.free_video_slots(session, SUNDAY, at(11, 30)) == [at(11, 20), at(11, 40)]
        assert booking.free_video_slots(session, dt.date(2026, 12, 4), NOW) == []  # a Friday
        assert not booking.day_is_full(session, AppointmentKind.VIDEO, SUNDAY, NOW)
        assert booking.in_person_seats(session, SUNDAY, NOW) == (at(13), 30)


def test_the_first_waiting_citizen_is_offered_a_freed_seat_and_the_offer_holds_it(demo_db):
    with demo_db.write() as session:
        session.scalars(sa.select(GovernorSchedule)).one().in_person_capacity = 1
        first = booking.book(session, citizen=person(session, 1), kind=AppointmentKind.IN_PERSON, at=at(13),
                             actor="test", now=NOW)
        assert booking.day_is_full(session, AppointmentKind.IN_PERSON, SUNDAY, NOW)
        early = waitlist.join(session, citizen=person(session, 2), kind=AppointmentKind.IN_PERSON, day=SUNDAY,
                              language="en", actor="test", now=NOW)
        late = waitlist.join(session, citizen=person(session, 3), kind=AppointmentKind.IN_PERSON, day=SUNDAY,
                             actor="test", now=NOW)
        with pytest.raises(InvalidInput, match="already on the waitlist"):
            waitlist.join(session, citizen=person(session, 2), kind=AppointmentKind.IN_PERSON, day=SUNDAY,
                          actor="test", now=NOW)
        booking.cancel(session, first, "ظرف", actor="test", now=NOW)
        assert early.status is WaitlistStatus.OFFERED and late.status is WaitlistStatus.WAITING
        message = session.scalars(sa.select(OutboxMessage)).one()
        assert message.language == "en" and "Sunday 2026-12-06 at 13:00" in message.body
        with pytest.raises(booking.SlotTaken):  # held for the one it was offered to
            booking.book(session, citizen=person(session, 4), kind=AppointmentKind.IN_PERSON, at=at(13),
                         actor="test", now=NOW)
        waitlist.withdraw(session, early, actor="test", now=NOW)  # the offer passes to the next
        assert late.status is WaitlistStatus.OFFERED
        appointment = waitlist.accept(session, late, actor="test", now=NOW)
        assert late.status is WaitlistStatus.BOOKED and appointment.citizen.name == "مواطن 3"
        assert "تم حجز موعدك" in outbox.for_appointment(session, appointment)[0].body


def test_a_day_with_room_has_no_waitlist(demo_db):
    with demo_db.write() as session:
        with pytest.raises(InvalidInput, match="still has free slots"):
            waitlist.join(session, citizen=person(session, 1), kind=AppointmentKind.VIDEO, day=SUNDAY,
                          centre=booking.centre_by_code(session, "BDR"), actor="test", now=NOW)


def test_a_reschedule_frees_the_old_slot_for_the_waitlist(demo_db):
    with demo_db.write() as session:
        centre = booking.centre_by_code(session, "BDR")
        held = [booking.book(session, citizen=person(session, n), kind=AppointmentKind.VIDEO, at=slot,
                             centre=centre, actor="test", now=NOW)
                for n, slot in enumerate(booking.free_video_slots(session, SUNDAY, NOW), start=1)]
        entry = waitlist.join(session, citizen=person(session, 50), kind=AppointmentKind.VIDEO, day=SUNDAY,
                              centre=centre, actor="test", now=NOW)
        booking.reschedule(session, held[0], at(9, day=dt.date(2026, 12, 7)), actor="test", now=NOW)
        assert entry.status is WaitlistStatus.OFFERED and entry.offered_slot == at(9)
        assert booking.free_video_slots(session, SUNDAY, NOW) == []  # the offer holds it
