"""The governor's console through the Flask test client: who may see and act, the day's sessions
with their history, connect next, end, no-show (with its rules), and the live state stream."""
import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa

from tawasul import demo, livestate, references
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEntry,
    Call,
    Centre,
    Citizen,
    TicketKind,
)
from tawasul.tickets import open_ticket
from tawasul.validation import make_national_id
from tests.conftest import csrf_token
from web import console


def db(web_app):
    return web_app.extensions["tawasul.db"]


def now():
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def add_session(web_app, *, minutes_from_now=-2, status=AppointmentStatus.CHECKED_IN, name="سارة محمد العتيبي",
                subject="طلب ترميم مدرسة", centre="BDR", national="34567890", kind=AppointmentKind.VIDEO) -> int:
    with db(web_app).write() as session:
        national_id = make_national_id("1", national)
        citizen = session.scalars(sa.select(Citizen).where(Citizen.national_id == national_id)).first() or Citizen(
            national_id=national_id, name=name, mobile="+966551234567")
        appointment = Appointment(
            reference=references.new_reference("appointment"), checkin_code="1234", citizen=citizen,
            kind=kind, slot_start=now() + dt.timedelta(minutes=minutes_from_now), slot_minutes=15,
            centre=session.scalars(sa.select(Centre).where(Centre.code == centre)).one(),
            subject=subject, status=status)
        session.add(appointment)
        session.flush()
        return appointment.id


def status_of(web_app, appointment_id):
    with db(web_app).read() as session:
        return session.get(Appointment, appointment_id).status


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/console/"), **data})


@pytest.fixture
def ami_sent(monkeypatch):
    """Every AMI action list the console sends; answers Success (or what `replies` holds)."""
    sent, replies = [], []

    def fake(settings, actions, user="web"):
        sent.append(actions)
        fake.users.append(user)
        return replies.pop(0) if replies else [{"Response": "Success"} for _ in actions]
    monkeypatch.setattr(console, "send_actions", fake)
    fake.sent, fake.replies, fake.users = sent, replies, []
    return fake


@pytest.mark.parametrize("path", ["/console/", "/console/state", "/console/stream"])
@pytest.mark.parametrize("username", ["staff", "it_admin"])
def test_only_the_governors_office_sees_the_console(client, login, path, username):
    assert client.get(path).status_code == 302  # anonymous: to the sign-in page
    login(username)
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("action", ["next", "{id}/end", "{id}/no-show"])
def test_only_the_governors_office_acts(web_app, client, login, ami_sent, action):
    appointment = add_session(web_app, status=AppointmentStatus.BOOKED)  # the desk shows its check-in form
    login("staff")
    token = csrf_token(client, "/desk/")
    assert client.post(f"/console/{action.format(id=appointment)}", data={"csrf_token": token}).status_code == 403
    assert ami_sent.sent == [] and status_of(web_app, appointment) is AppointmentStatus.BOOKED


def test_actions_need_the_csrf_token(web_app, client, login, ami_sent):
    appointment = add_session(web_app)
    login("governor_office")
    for action in ("next", f"{appointment}/end", f"{appointment}/no-show"):
        assert client.post(f"/console/{action}").status_code == 400
    assert ami_sent.sent == [] and status_of(web_app, appointment) is AppointmentStatus.CHECKED_IN


def test_the_days_sessions_in_order_with_history_in_arabic(web_app, client, login):
    later = add_session(web_app, minutes_from_now=20, name="خالد عبدالله", national="11112222", subject="طريق القرية")
    first = add_session(web_app, minutes_from_now=-5)
    add_session(web_app, minutes_from_now=40, status=AppointmentStatus.CANCELLED, national="99998888",
                name="ملغى الموعد")
    earlier = add_session(web_app, minutes_from_now=-60 * 24 * 8, status=AppointmentStatus.COMPLETED,
                          subject="موضوع قديم")
    with db(web_app).write() as session:
        old = session.get(Appointment, earlier)
        open_ticket(session, kind=TicketKind.COMPLAINT, subject="شكوى سابقة عن الطريق", citizen=old.citizen,
                    actor="test")
    login("governor_office")
    page = client.get("/console/").get_data(as_text=True)
    assert 'lang="ar" dir="rtl"' in page and "منصة سمو الأمير" in page
    assert page.index(f'id="session-{first}"') < page.index(f'id="session-{later}"')
    assert "ملغى الموعد" not in page
    assert "سارة محمد العتيبي" in page and "خالد عبدالله" in page and "طريق القرية" in page
    assert "مركز تواصل - محافظة بدر" in page  # the centre, in Arabic
    assert "الجلسات السابقة" in page and "موضوع قديم" in page and "شكوى سابقة عن الطريق" in page
    assert f"/followups/appointment/{first}" in page  # the directive: the existing follow-up form
    assert 'role="timer"' in page and 'aria-label="إنهاء الجلسة مع سارة محمد العتيبي"' in page
    assert "<script>" not in page and "console.js" in page  # CSP: no inline script
    english = client.get("/console/?lang=en").get_data(as_text=True)
    assert "Governor's console" in english and 'dir="ltr"' in english


def test_connect_next_with_nothing_due_says_so(web_app, client, login, ami_sent):
    add_session(web_app, minutes_from_now=60)  # checked in, but not due
    add_session(web_app, minutes_from_now=-2, status=AppointmentStatus.BOOKED, national="22223333")  # not in
    login("governor_office")
    response = post(client, "/console/next")
    assert response.status_code == 303 and ami_sent.sent == []
    page = client.get("/console/").get_data(as_text=True)
    assert "لا توجد جلسة حان موعدها وسُجّل حضور صاحبها" in page


def test_connect_next_originates_the_due_session(web_app, client, login, ami_sent):
    appointment = add_session(web_app)
    login("governor_office")
    assert post(client, "/console/next").status_code == 303
    [[originate]] = ami_sent.sent
    assert ami_sent.users == ["web"]  # the web's AMI user: originate, no system
    assert originate["Action"] == "Originate" and originate["Channel"] == f"PJSIP/{demo.GOVERNOR_DESK_USER}"
    assert f"TAWASUL_APPOINTMENT={appointment}" in originate["Variable"]
    assert "TAWASUL_CENTRE=centre-bdr-1" in originate["Variable"]
    with db(web_app).read() as session:
        assert session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "call.connect_next")).one() \
            .actor == "governor_office"
    assert "جارٍ الاتصال بجهاز سمو الأمير" in client.get("/console/").get_data(as_text=True)


def test_connect_next_refused_while_in_session_or_by_asterisk(web_app, client, login, ami_sent):
    add_session(web_app)
    login("governor_office")
    ami_sent.replies.append([{"Response": "Error", "Message": "Originate failed"}])
    post(client, "/console/next")
    assert "Originate failed" in client.get("/console/").get_data(as_text=True)
    add_session(web_app, minutes_from_now=-20, status=AppointmentStatus.IN_SESSION, national="44445555")
    post(client, "/console/next")
    assert len(ami_sent.sent) == 1
    assert "سمو الأمير في جلسة الآن" in client.get("/console/").get_data(as_text=True)


def test_end_hangs_up_the_sessions_channels(web_app, client, login, ami_sent):
    appointment = add_session(web_app, status=AppointmentStatus.IN_SESSION)
    login("governor_office")
    post(client, f"/console/{appointment}/end")
    # no call record, no live channel: Asterisk is asked, and has none of the centre's channels
    assert ami_sent.sent == [[{"Action": "CoreShowChannels"}]]
    with db(web_app).write() as session:
        session.add(Call(uniqueid="1700000000.1", appointment_id=appointment, channel="PJSIP/governor-desk-0000000a",
                         peer_channel="PJSIP/centre-bdr-1-0000000b", decision="connect", answer_at=now()))
    ami_sent.sent.clear()
    post(client, f"/console/{appointment}/end")
    [actions] = ami_sent.sent
    assert [(a["Action"], a["Channel"]) for a in actions] == [
        ("Hangup", "PJSIP/governor-desk-0000000a"), ("Hangup", "PJSIP/centre-bdr-1-0000000b")]
    assert "جارٍ إنهاء الجلسة" in client.get("/console/").get_data(as_text=True)


def test_end_finds_the_channel_from_asterisk_without_a_record(web_app, client, login, ami_sent):
    appointment = add_session(web_app, status=AppointmentStatus.IN_SESSION)
    login("governor_office")
    ami_sent.replies.append([[{"Event": "CoreShowChannel", "Channel": "PJSIP/centre-bdr-1-000000aa"},
                              {"Event": "CoreShowChannel", "Channel": "PJSIP/centre-ula-1-000000ab"},
                              {"Event": "CoreShowChannelsComplete"}]])
    post(client, f"/console/{appointment}/end")
    assert ami_sent.sent[0] == [{"Action": "CoreShowChannels"}]
    assert ami_sent.sent[1] == [{"Action": "Hangup", "Channel": "PJSIP/centre-bdr-1-000000aa", "Cause": "16"}]


def test_end_without_a_call_is_refused(web_app, client, login, ami_sent):
    appointment = add_session(web_app)
    login("governor_office")
    post(client, f"/console/{appointment}/end")
    assert ami_sent.sent == []
    assert "لا توجد مكالمة جارية لهذه الجلسة" in client.get("/console/").get_data(as_text=True)
    assert client.post("/console/999999/end", data={"csrf_token": csrf_token(client, "/console/")}).status_code == 404


def test_no_show_only_for_a_due_session_not_in_session(web_app, client, login):
    due = add_session(web_app, minutes_from_now=-3, status=AppointmentStatus.BOOKED)
    future = add_session(web_app, minutes_from_now=30, status=AppointmentStatus.BOOKED, national="55556666")
    live = add_session(web_app, minutes_from_now=-20, status=AppointmentStatus.IN_SESSION, national="66667777")
    done = add_session(web_app, minutes_from_now=-40, status=AppointmentStatus.COMPLETED, national="77778888")
    ringing = add_session(web_app, minutes_from_now=-60, status=AppointmentStatus.CHECKED_IN, national="88889999")
    with db(web_app).write() as session:
        session.add(Call(uniqueid="1700000000.9", appointment_id=ringing, decision="connect"))
    login("governor_office")
    post(client, f"/console/{future}/no-show")
    assert status_of(web_app, future) is AppointmentStatus.BOOKED
    assert "لم يحن موعد هذه الجلسة بعد" in client.get("/console/").get_data(as_text=True)
    for refused in (live, done, ringing):
        post(client, f"/console/{refused}/no-show")
        assert "لا يُسجَّل عدم الحضور إلا" in client.get("/console/").get_data(as_text=True)
    assert status_of(web_app, live) is AppointmentStatus.IN_SESSION
    assert status_of(web_app, done) is AppointmentStatus.COMPLETED
    assert status_of(web_app, ringing) is AppointmentStatus.CHECKED_IN
    post(client, f"/console/{due}/no-show")
    assert status_of(web_app, due) is AppointmentStatus.NO_SHOW
    with db(web_app).read() as session:
        assert session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "appointment.no_show")).one() \
            .actor == "governor_office"


def test_state_joins_registrations_statuses_and_calls(web_app, client, login):
    appointment = add_session(web_app, status=AppointmentStatus.IN_SESSION)
    other = add_session(web_app, minutes_from_now=20, centre="ULA", national="12121212", status=AppointmentStatus.BOOKED)
    answered = now() - dt.timedelta(minutes=3)
    with db(web_app).write() as session:
        livestate.save(session, {"ami": True, "registered": ["centre-bdr-1", "governor-desk"], "channels": {}})
        session.add(Call(uniqueid="1700000000.2", appointment_id=appointment, decision="connect", answer_at=answered))
    login("governor_office")
    state = client.get("/console/state").get_json()
    rows = {row["id"]: row for row in state["sessions"]}
    assert state["ami"] is True
    assert rows[appointment] == {"id": appointment, "status": "in_session", "phase": "in_session",
                                 "registered": True, "ringing": False, "since": answered.isoformat()}
    assert rows[other]["registered"] is False and rows[other]["phase"] == "booked" and rows[other]["since"] is None


def _next_text(chunks) -> str:
    chunk = next(chunks)
    return chunk.decode() if isinstance(chunk, bytes) else chunk


def test_the_stream_pushes_a_change_without_reload(web_app, client, login):
    web_app.config.update(CONSOLE_STREAM_SECONDS=5, CONSOLE_POLL_SECONDS=0.05)
    appointment = add_session(web_app, status=AppointmentStatus.BOOKED)
    login("governor_office")
    response = client.get("/console/stream", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    buffer = ""

    def next_event():
        nonlocal buffer
        while "\n\n" not in buffer or not buffer.split("\n\n", 1)[0].startswith("event: state"):
            if "\n\n" in buffer:
                buffer = buffer.split("\n\n", 1)[1]
                continue
            buffer += _next_text(chunks)
        block, buffer = buffer.split("\n\n", 1)
        return json.loads(re.search(r"^data: (.*)$", block, re.MULTILINE).group(1))

    first = next_event()
    assert [(r["id"], r["phase"], r["registered"]) for r in first["sessions"]] == [(appointment, "booked", False)]
    with db(web_app).write() as session:
        session.get(Appointment, appointment).status = AppointmentStatus.CHECKED_IN
    assert next_event()["sessions"][0]["phase"] == "checked_in"
    with db(web_app).write() as session:
        livestate.save(session, {"ami": True, "registered": ["centre-bdr-1"], "channels": {}})
    second = next_event()
    assert second["ami"] is True and second["sessions"][0]["registered"] is True
    response.close()


def test_streams_are_capped_per_worker(web_app, client, login):
    web_app.config.update(CONSOLE_MAX_STREAMS=1, CONSOLE_STREAM_SECONDS=2, CONSOLE_POLL_SECONDS=0.05)
    login("governor_office")
    first = client.get("/console/stream", buffered=False)
    assert first.status_code == 200
    refused = client.get("/console/stream", buffered=False)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
    first.close()  # the slot is given back when the stream ends
    again = client.get("/console/stream", buffered=False)
    assert again.status_code == 200
    again.close()


def test_the_consoles_video_credentials_go_to_asterisk_as_the_provision_user(web_app, client, login, ami_sent):
    login("governor_office")
    response = client.post("/console/video", data={"csrf_token": csrf_token(client, "/console/")})
    assert response.status_code == 200 and response.get_json()["ok"]
    [[put]] = ami_sent.sent
    assert put["Action"] == "DBPut" and ami_sent.users == ["provision"]  # DBPut is AMI class system
