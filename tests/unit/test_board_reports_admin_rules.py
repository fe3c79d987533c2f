"""Core rules of the status board (alerts, AMI parsing), IT administration's validation, and the
report queries (SQLite and PostgreSQL via the `db` fixture)."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tawasul import administration, board, reports
from tawasul.models import (Appointment, AppointmentKind, AppointmentStatus, AuditEntry, Call, Centre, Citizen,
                            GovernorSchedule, Ticket, TicketKind, TicketStatus)
from tawasul.validation import Conflict, InvalidInput
from tawasul.vault import Vault

UTC = dt.timezone.utc
NOW = dt.datetime(2030, 1, 6, 6, 0, tzinfo=UTC)
RIYADH = ZoneInfo("Asia/Riyadh")


# --------------------------------------------------------------------------- the alert rule


def reg(user, ok=True):
    return board.Registration(user, registered=ok, status="Reachable" if ok else "Unavailable")


def upcoming(minutes, centre="BDR", users=("centre-bdr-1",)):
    return board.Upcoming(f"REF{minutes}", centre, NOW + dt.timedelta(minutes=minutes), users)


def test_alert_for_unregistered_centre_with_session_within_30_minutes():
    alerts = board.alerts({"centre-bdr-1": reg("centre-bdr-1", False)}, [upcoming(20)], NOW)
    assert [(a.centre_code, a.reference, a.minutes_left) for a in alerts] == [("BDR", "REF20", 20)]


def test_no_alert_when_registered_or_far_away_or_past():
    regs = {"centre-bdr-1": reg("centre-bdr-1")}
    assert board.alerts(regs, [upcoming(10)], NOW) == []
    assert board.alerts({}, [upcoming(31), upcoming(-5)], NOW) == []
    # one phone of two registered is enough; unknown devices count as unregistered
    assert board.alerts(regs, [upcoming(5, users=("x", "centre-bdr-1"))], NOW) == []
    assert len(board.alerts({}, [upcoming(0), upcoming(30, centre="YNB", users=("centre-ynb-1",))], NOW)) == 2
    assert len(board.alerts({}, [upcoming(5, users=())], NOW)) == 1  # a centre with no phone at all


def test_parse_ami_answers():
    endpoints = [{"Response": "Success"}, {"Event": "EndpointList", "ObjectName": "centre-bdr-1",
                                           "Transport": "transport-tls", "DeviceState": "Not in use",
                                           "ActiveChannels": "0"}]
    contacts = [{"Event": "ContactList", "Endpoint": "centre-bdr-1", "Aor": "centre-bdr-1", "Status": "Reachable",
                 "RoundtripUsec": "1534", "UserAgent": "baresip v3", "RegExpire": "1893456000",
                 "Uri": "sip:centre-bdr-1@127.0.0.1:5070;transport=tls"}]
    detail = [{"Event": "EndpointDetail", "Allow": "(opus|g722|ulaw|alaw|vp8|h264)", "MediaEncryption": "sdes",
               "Transport": "transport-tls"}]
    out = board.parse(["centre-bdr-1", "centre-ynb-1"], endpoints, contacts, {"centre-bdr-1": detail})
    bdr = out["centre-bdr-1"]
    assert bdr.registered and bdr.via_tls and bdr.roundtrip_ms == 1.5 and bdr.user_agent == "baresip v3"
    assert bdr.codecs == ("opus", "g722", "ulaw", "alaw", "vp8", "h264") and bdr.media_encryption == "sdes"
    assert bdr.expires_at.year == 2030
    assert not out["centre-ynb-1"].registered and out["centre-ynb-1"].status == "Unavailable"
    unreachable = board.parse(["centre-bdr-1"], [], [{**contacts[0], "Status": "Unreachable"}], {})
    assert not unreachable["centre-bdr-1"].registered


def test_test_call_goes_to_the_echo():
    action = board.test_call_action("centre-bdr-1")
    assert (action["Channel"], action["Context"], action["Exten"], action["Priority"]) == \
        ("PJSIP/centre-bdr-1", "tawasul-internal", "echo", "1")


# --------------------------------------------------------------------------- administration validation


@pytest.mark.parametrize("text,expected", [
    ("10.20.30.0/24", "10.20.30.0/24"),
    ("127.0.0.0/8, 10.0.0.0/8\n10.0.0.0/8", "127.0.0.0/8, 10.0.0.0/8"),
    ("fd00:1::/64,192.168.1.7/32", "fd00:1::/64, 192.168.1.7/32"),
])
def test_networks_accepted(text, expected):
    assert administration.networks(text) == expected


@pytest.mark.parametrize("text", ["", "10.20.30.1/24", "10.20.30.0", "300.1.1.0/24", "10.0.0.0/33", "hello/8"])
def test_networks_refused(text):
    with pytest.raises(InvalidInput) as err:
        administration.networks(text)
    assert err.value.field == "allowed_networks"


def test_mac_and_code():
    assert administration.mac("00-15-65-AA-BB-CC") == "00:15:65:aa:bb:cc"
    assert administration.mac("") is None
    with pytest.raises(InvalidInput):
        administration.mac("00:15:65")
    assert administration.code(" abc ") == "ABC"
    for bad in ("A", "1AB", "AB-C", "ABCDEFGHIJK"):
        with pytest.raises(InvalidInput):
            administration.code(bad)


def test_admin_changes_are_validated_and_audited(demo_db, settings):
    with demo_db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one()
        with pytest.raises(Conflict):
            administration.save_centre(session, "it", None, code_="BDR", governorate_id=centre.governorate_id,
                                       name_ar="س", name_en="x", allowed_networks="10.0.0.0/8")
        device, secret = administration.add_device(session, Vault.for_settings(settings), "it", kind="centre_phone",
                                                   sip_user="centre-bdr-2", centre_id=centre.id, mac_="0015651234AB",
                                                   vendor="yealink")
        assert Vault.for_settings(settings).decrypt(device.secret_encrypted) == secret and len(secret) >= 20
        with pytest.raises(Conflict):
            administration.add_device(session, Vault.for_settings(settings), "it", kind="centre_phone",
                                      sip_user="centre-bdr-2", centre_id=centre.id)
        schedule = session.scalars(sa.select(GovernorSchedule)).first()
        with pytest.raises(Conflict):  # in-person session inside the video hours
            administration.save_schedule(session, "it", schedule, days=[6], video_start=dt.time(9),
                                         video_end=dt.time(12), slot_minutes=15, buffer_minutes=5,
                                         in_person_start=dt.time(11), in_person_capacity=30)
        with pytest.raises(InvalidInput):
            administration.save_schedule(session, "it", schedule, days=[6], video_start=dt.time(12),
                                         video_end=dt.time(9), slot_minutes=15, buffer_minutes=5,
                                         in_person_start=dt.time(13), in_person_capacity=30)
        administration.add_holiday(session, "it", schedule, dt.date(2030, 3, 1), "Founding")
        session.flush()
        with pytest.raises(Conflict):
            administration.add_holiday(session, "it", schedule, dt.date(2030, 3, 1), "again")
    with demo_db.read() as session:
        actions = session.scalars(sa.select(AuditEntry.action).where(AuditEntry.action.like("admin.%"))).all()
    assert "admin.device.create" in actions and "admin.holiday.add" in actions


# --------------------------------------------------------------------------- report queries


def _at(day, hour, minute=0):
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=RIYADH).astimezone(UTC)


def test_report_queries(demo_db):
    d1, d2 = dt.date(2030, 1, 6), dt.date(2030, 1, 14)  # Sunday of week 1, Monday of week 3
    with demo_db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one()
        citizen = Citizen(national_id="1000000001", name="Test", mobile="+966500000001")
        session.add(citizen)
        rows = [(d1, 9, AppointmentStatus.COMPLETED), (d1, 9.5, AppointmentStatus.COMPLETED),
                (d1, 10, AppointmentStatus.NO_SHOW), (d2, 9, AppointmentStatus.COMPLETED),
                (d2, 10, AppointmentStatus.CANCELLED)]
        for i, (day, hour, status) in enumerate(rows):
            start = _at(day, int(hour), int((hour % 1) * 60))
            appt = Appointment(reference=f"R{i}", checkin_code="1234", citizen=citizen, kind=AppointmentKind.VIDEO,
                               slot_start=start, slot_minutes=15, centre=centre, status=status)
            session.add(appt)
            if status is AppointmentStatus.COMPLETED:
                session.add(Call(uniqueid=f"u{i}", appointment=appt, centre_id=centre.id, answer_at=start,
                                 end_at=start + dt.timedelta(seconds=300 + 60 * i)))
        session.add(Call(uniqueid="unanswered", centre_id=centre.id, ring_at=_at(d1, 11)))
        for i, (category, status, due) in enumerate([
                ("roads", TicketStatus.RECEIVED, None), ("roads", TicketStatus.RESOLVED, None),
                ("water", TicketStatus.RECEIVED, None)]):
            session.add(Ticket(reference=f"C{i}", kind=TicketKind.COMPLAINT, status=status, subject="s",
                               category=category, created_at=_at(d1, 12)))
        session.add(Ticket(reference="D1", kind=TicketKind.DIRECTIVE, status=TicketStatus.REFERRED, subject="d",
                           due_date=dt.date(2030, 1, 10)))
        session.add(Ticket(reference="D2", kind=TicketKind.DIRECTIVE, status=TicketStatus.CLOSED, subject="d",
                           due_date=dt.date(2030, 1, 1)))
        session.add(Ticket(reference="D3", kind=TicketKind.DIRECTIVE, status=TicketStatus.RECEIVED, subject="d",
                           due_date=dt.date(2030, 2, 1)))
    with demo_db.read() as session:
        days = reports.sessions_by_day(session, d1, d2, RIYADH)
        assert len(days) == 9
        first = days[0]
        assert (first.held, first.no_shows, first.calls, first.average_seconds) == (2, 1, 2, 330.0)
        assert (days[-1].held, days[-1].no_shows, days[-1].average_seconds) == (1, 0, 480.0)
        weeks = reports.sessions_by_week(days)
        assert [(w.week, w.held, w.no_shows) for w in weeks] == [("2030-W01", 2, 1), ("2030-W02", 0, 0),
                                                                 ("2030-W03", 1, 0)]
        assert reports.average_duration(days) == pytest.approx((300 + 360 + 480) / 3, abs=0.1)
        assert reports.complaints_by_category(session, d1, d2, RIYADH) == [
            ("roads", "received", 1), ("roads", "resolved", 1), ("water", "received", 1)]
        overdue = reports.overdue_followups(session, dt.date(2030, 1, 15))
        assert [(o.reference, o.days_late) for o in overdue] == [("D1", 5)]
