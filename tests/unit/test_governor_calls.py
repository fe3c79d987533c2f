"""Connect next: the next due, checked-in appointment, and the AMI Originate that carries it out."""
import re

import pytest

from tawasul import booking, governor_calls
from tawasul.models import AppointmentStatus, Device, DeviceKind
from tawasul.validation import InvalidInput
from tests.unit.test_booking import SUNDAY, at, book_video

NOW = at(SUNDAY, 9, 2)


def next_call(session, now=NOW):
    return governor_calls.next_call(session, now, early_minutes=10, late_minutes=15)


def test_the_earliest_checked_in_appointment_is_called_and_the_action_names_no_national_id(demo_db):
    with demo_db.write() as session:
        first = book_video(session, at(SUNDAY, 9), n=1, centre="BDR")
        second = book_video(session, at(SUNDAY, 9, 20), n=2, centre="YNB")
        for appointment in (first, second):
            booking.check_in(session, appointment, actor="desk", now=at(SUNDAY, 8, 40))
        call = next_call(session)
        assert (call.appointment_id, call.centre_endpoint, call.governor_endpoint) == (
            first.id, "centre-bdr-1", "governor-desk-1")
        assert call.slot_seconds == 13 * 60  # until 09:15
        action = governor_calls.originate_action(call)
        assert action["Channel"] == "PJSIP/governor-desk-1" and action["Context"] == "tawasul-governor-call"
        assert "TAWASUL_CENTRE=centre-bdr-1" in action["Variable"]
        assert first.reference in action["CallerID"] and first.citizen.national_id not in str(action)


@pytest.mark.parametrize("setup, message", [
    ("nothing", "no checked-in appointment is due now"),
    ("not_checked_in", "no checked-in appointment is due now"),
    ("busy", "the governor is in a session"),
    ("no_phone", "no usable video phone"),
    ("no_desk", "no usable governor's desk"),
])
def test_refusals(demo_db, setup, message):
    with demo_db.write() as session:
        if setup != "nothing":
            appointment = book_video(session, at(SUNDAY, 9))
            if setup != "not_checked_in":
                booking.check_in(session, appointment, actor="desk", now=at(SUNDAY, 8, 40))
            if setup == "busy":
                other = book_video(session, at(SUNDAY, 9, 20), n=2)
                other.status = AppointmentStatus.IN_SESSION
            if setup == "no_phone":
                for device in session.query(Device).filter(Device.centre_id == appointment.centre_id):
                    device.enabled = False
            if setup == "no_desk":
                for device in session.query(Device).filter(Device.kind == DeviceKind.GOVERNOR_DESK):
                    device.enabled = False
        session.flush()
        with pytest.raises(InvalidInput, match=message):
            next_call(session)


def test_caller_name_cannot_inject_callerid():
    """What the governor's phone shows is the citizen's name and reference, whatever the name holds: it can
    neither end the quoted name (") and give another number (<...>), nor start another AMI header line."""
    hostile = 'Ali" <sip:governor-desk-1@evil> "Governor\\\r\nAction: Hangup\r\nChannel: PJSIP/governor-desk-1; [x]'
    call = governor_calls.NextCall(7, "A-1234-5678", hostile, "centre-bdr-1", "governor-desk-1", 600)
    caller_id = governor_calls.originate_action(call)["CallerID"]
    assert re.fullmatch(r'"[^"<>\\\r\n;\[\]]*" <A-1234-5678>', caller_id), caller_id
    name = caller_id.split('"')[1]
    assert name.startswith("Ali") and name.endswith("A-1234-5678") and "Action: Hangup" in name
