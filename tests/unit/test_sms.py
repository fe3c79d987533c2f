"""SMS: backoff, the presets' requests and answers, claims, retries and permanent failure (on the board),
reminders and status messages. The gateway is a real HTTP server on loopback (tests/sms_gateway.py)."""
import dataclasses
import datetime as dt
import os
import random
import subprocess
import sys
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from tawasul import booking, outbox, tickets
from tawasul.models import AppointmentKind, OutboxMessage, TicketKind, TicketStatus, utcnow
from tawasul.settings import SettingsError
from tawasul.sms import gateway, reminders
from tawasul.sms.gateway import FAILED, RETRY, SENT, Gateway, Message, http_outcome
from tawasul.sms.sender import Sender, backoff
from tawasul.validation import make_national_id
from tests.sms_gateway import FakeGateway

RIYADH = ZoneInfo("Asia/Riyadh")
MESSAGE = Message("+966551234567", "تواصل: تم حجز موعدك", "k-1", "ar")


def sms_settings(settings, url="http://127.0.0.1:9/send", **more):
    config = dataclasses.replace(settings, sms_gateway_url=url, sms_timeout=1.0, sms_lease_seconds=3.5,
                                 sms_retry_seconds=0.01, sms_retry_max_seconds=0.05, sms_max_attempts=3)
    return dataclasses.replace(config, **more)


# --- backoff ---

def test_backoff_doubles_with_jitter_up_to_its_cap():
    rand = random.Random(7)
    for attempt, base in [(1, 30), (2, 60), (3, 120), (4, 240)]:
        waits = [backoff(attempt, 30, 3600, rand) for _ in range(200)]
        assert base * 0.5 <= min(waits) < max(waits) <= base * 1.5
        assert len(set(waits)) > 150  # jitter: not all at once
    assert all(1800 <= backoff(20, 30, 3600, rand) <= 5400 for _ in range(50))


# --- presets: the requests ---

@pytest.mark.parametrize("preset, secret, expected", [
    ("unifonic-json", {"app_sid": "SID"}, {"json": {
        "AppSid": "SID", "SenderID": "Tawasul", "Recipient": "966551234567", "Body": MESSAGE.body,
        "CorrelationID": "k-1", "MessageType": "3", "async": "false"}}),
    ("unifonic-form", {"app_sid": "SID"}, {"data": {
        "AppSid": "SID", "SenderID": "Tawasul", "Recipient": "966551234567", "Body": MESSAGE.body,
        "CorrelationID": "k-1", "MessageType": "3", "async": "false"}}),
    ("taqnyat", {"token": "TOKEN"}, {"headers": {"Authorization": "Bearer TOKEN"}, "json": {
        "recipients": ["966551234567"], "sender": "Tawasul", "body": MESSAGE.body}}),
    ("msegat", {"user_name": "emirate", "api_key": "KEY"}, {"json": {
        "userName": "emirate", "apiKey": "KEY", "numbers": "966551234567", "userSender": "Tawasul",
        "msg": MESSAGE.body, "msgEncoding": "UTF8"}}),
])
def test_presets_make_each_gateways_request(settings, preset, secret, expected):
    made = Gateway(sms_settings(settings, sms_request=preset, sms_sender_id="Tawasul"), secret).request(MESSAGE)
    assert {k: v for k, v in dataclasses.asdict(made).items() if v} == expected


def test_presets_reach_a_real_server_as_form_or_json(settings):
    with FakeGateway() as fake, httpx.Client() as http:
        for preset in ("unifonic-form", "unifonic-json"):
            gw = Gateway(sms_settings(settings, url=fake.url, sms_request=preset, sms_sender_id="Tawasul"),
                         {"app_sid": "SID"})
            assert gw.send(http, dataclasses.replace(MESSAGE, key=preset)).result == SENT
        form, as_json = fake.requests
        assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
        assert as_json["headers"]["Content-Type"] == "application/json"
        assert form["body"] == as_json["body"] | {"CorrelationID": "unifonic-form"}
        assert form["body"]["Body"] == MESSAGE.body  # Arabic arrives whole


def test_custom_template_headers_and_idempotency_key(settings, tmp_path):
    custom = sms_settings(settings, sms_headers="Authorization: Bearer {{ secret.token }}\nX-Lang: {{ language }}",
                          sms_sender_id="Tawasul")
    with FakeGateway() as fake, httpx.Client() as http:
        outcome = Gateway(dataclasses.replace(custom, sms_gateway_url=fake.url), {"token": "T"}).send(http, MESSAGE)
        [request] = fake.requests
    assert outcome == gateway.Outcome(SENT, "", "gw-k-1")
    assert request["headers"]["Idempotency-Key"] == "k-1" and request["headers"]["Authorization"] == "Bearer T"
    assert request["headers"]["X-Lang"] == "ar"
    assert request["body"] == {"to": "966551234567", "body": MESSAGE.body, "sender": "Tawasul", "key": "k-1"}
    with pytest.raises(SettingsError, match="secret"):  # a template naming a secret the file lacks
        Gateway(custom, {})


def response(status, payload=None):
    return httpx.Response(status, json=payload if payload is not None else {},
                          request=httpx.Request("POST", "http://gw"))


@pytest.mark.parametrize("preset, status, payload, result", [
    ("custom", 200, {"id": "x"}, SENT), ("custom", 409, {}, SENT), ("custom", 500, {}, RETRY),
    ("custom", 503, {}, RETRY), ("custom", 429, {}, RETRY), ("custom", 408, {}, RETRY),
    ("custom", 400, {}, FAILED), ("custom", 401, {}, FAILED), ("custom", 403, {}, FAILED), ("custom", 422, {}, FAILED),
    ("unifonic-json", 200, {"success": True, "errorCode": "ER-00", "data": {"MessageID": 5}}, SENT),
    ("unifonic-json", 200, {"success": False, "errorCode": "ER-09", "message": "duplicate"}, SENT),
    ("unifonic-json", 200, {"success": False, "errorCode": "ER-01", "message": "no funds"}, RETRY),
    ("unifonic-json", 200, {"success": False, "errorCode": "ER-04", "message": "invalid recipient"}, FAILED),
    ("taqnyat", 201, {"statusCode": 201, "messageId": 9}, SENT), ("taqnyat", 401, {"message": "no"}, FAILED),
    ("msegat", 200, {"code": "M0000"}, SENT), ("msegat", 200, {"code": "1061"}, SENT),
    ("msegat", 200, {"code": "1060"}, RETRY), ("msegat", 200, {"code": "M0002"}, FAILED),
    ("msegat", 200, {"code": "1120"}, FAILED),
])
def test_answers_mean_sent_retry_or_failed(preset, status, payload, result):
    assert http_outcome(response(status, payload), gateway.PRESETS[preset][1]).result == result


def test_refused_settings_and_secrets(settings):
    with pytest.raises(SettingsError, match="sms_request"):
        Gateway(sms_settings(settings, sms_request="nexmo"), {})
    with pytest.raises(SettingsError, match="sms_lease_seconds"):
        Gateway(dataclasses.replace(sms_settings(settings), sms_lease_seconds=2), {})
    with pytest.raises(SettingsError, match="app_sid"):
        Gateway(sms_settings(settings, sms_request="unifonic-json"), {})
    secret = settings.secrets_dir / gateway.SECRET_FILE
    secret.parent.mkdir(parents=True)
    secret.write_text('app_sid = "SID"\n')
    secret.chmod(0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        Gateway(sms_settings(settings, sms_request="unifonic-json"))
    secret.chmod(0o600)
    assert Gateway(sms_settings(settings, sms_request="unifonic-json")).secret == {"app_sid": "SID"}


# --- the sender, in this process, on SQLite and PostgreSQL ---

def queue(db, *bodies):
    with db.write() as session:
        for body in bodies:
            outbox.queue(session, "+966551234567", body, key=body)


def statuses(db):
    with db.read() as session:
        return {m.key: (m.status, m.attempts) for m in session.scalars(sa.select(OutboxMessage))}


def test_retries_then_sends_and_fails_for_good(db, settings):
    queue(db, "flaky", "bad-number", "down")
    with FakeGateway() as fake:
        fake.plan = {"flaky": ["500"], "bad-number": ["400"], "down": ["500"] * 10}
        sender = Sender(sms_settings(settings, url=fake.url), db, Gateway(sms_settings(settings, url=fake.url)))
        for _ in range(20):
            sender.send_due()
            if all(s in ("sent", "failed") for s, _ in statuses(db).values()):
                break
        assert statuses(db) == {"flaky": ("sent", 2), "bad-number": ("failed", 1), "down": ("failed", 3)}
        assert fake.attempts("down") == 3 and set(fake.delivered) == {"flaky"}
    with db.read() as session:
        count, latest = outbox.failures(session)
    assert count == 2 and {m.key: m.last_error for m in latest} == {
        "bad-number": 'HTTP 400 Bad Request: {"error": "invalid number"}',
        "down": '3 attempts, the last: HTTP 500 Internal Server Error: {"error": "try again"}'}


def test_a_claim_is_one_senders_until_its_lease_runs_out(db, settings):
    queue(db, "one")
    config = sms_settings(settings)
    first, second = Sender(config, db, Gateway(config)), Sender(config, db, Gateway(config))
    now = utcnow()
    assert first.claim(now)[0:2] == (1, 1)
    assert second.claim(now) is None and second.claim(now + dt.timedelta(seconds=3)) is None
    taken = second.claim(now + dt.timedelta(seconds=4))  # the first sender died: same key, next attempt
    assert taken[1] == 2 and taken[2].key == "one"
    assert not first.finish(1, 1, gateway.Outcome(SENT), now)  # its claim is gone: changes nothing
    assert statuses(db) == {"one": ("sending", 2)}
    assert second.finish(1, 2, gateway.Outcome(SENT), now)
    assert statuses(db) == {"one": ("sent", 2)}


def test_a_last_attempt_cut_short_fails_as_delivery_unknown(db, settings):
    queue(db, "cut")
    config = sms_settings(settings)
    sender = Sender(config, db, Gateway(config))
    now = utcnow()
    for n in range(3):  # three claims, each by a sender that died during its request
        assert sender.claim(now + dt.timedelta(seconds=4 * n))
    assert sender.give_up_cut_attempts(now + dt.timedelta(seconds=20)) == 1
    assert statuses(db) == {"cut": ("failed", 3)}


# --- reminders and status messages ---

def book(session, n, at, now):
    citizen = booking.find_or_register_citizen(session, make_national_id("1", f"{n:08d}"), f"مواطن {n}", "0501234567")
    return booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=at,
                        centre=booking.centre_by_code(session, "BDR"), actor="test", now=now)


def test_reminders_a_day_and_an_hour_before_once_each_for_booked_sessions_only(demo_db, settings):
    slot = dt.datetime(2030, 1, 6, 9, 0, tzinfo=RIYADH).astimezone(dt.UTC)  # a Sunday
    with demo_db.write() as session:
        early = book(session, 1, slot, slot - dt.timedelta(days=3))
        outbox.queue(session, early.citizen.mobile, "booked", "en", early)
        late = book(session, 2, slot + dt.timedelta(minutes=20), slot - dt.timedelta(hours=2))
        cancelled = book(session, 3, slot + dt.timedelta(minutes=40), slot - dt.timedelta(days=3))
        booking.cancel(session, cancelled, "ظرف", actor="test", now=slot - dt.timedelta(days=2))
        for a in (early, late, cancelled):
            a.created_at = a.slot_start - (dt.timedelta(hours=2) if a is late else dt.timedelta(days=3))
    config = dataclasses.replace(settings, sms_reminders="24h,1h")

    def reminded():
        with demo_db.read() as session:
            return sorted(m.key for m in session.scalars(sa.select(OutboxMessage).where(
                OutboxMessage.key.like("reminder-%"))))

    assert reminders.queue_due(demo_db, config, slot - dt.timedelta(hours=25)) == 0
    assert reminders.queue_due(demo_db, config, slot - dt.timedelta(hours=23)) == 1
    assert reminders.queue_due(demo_db, config, slot - dt.timedelta(hours=22)) == 0  # once
    assert reminded() == [f"reminder-1440m-{early.id}"]
    assert reminders.queue_due(demo_db, config, slot - dt.timedelta(minutes=30)) == 2
    assert reminded() == sorted([f"reminder-1440m-{early.id}", f"reminder-60m-{early.id}", f"reminder-60m-{late.id}"])
    with demo_db.read() as session:
        text = session.scalars(sa.select(OutboxMessage.body).where(
            OutboxMessage.key == f"reminder-60m-{early.id}")).one()
    assert text.startswith("Tawasul: a reminder of your meeting") and "Sunday 2030-01-06 at 09:00" in text
    assert "مواطن" not in text  # no name
    assert reminders.queue_due(demo_db, dataclasses.replace(config, sms_reminders=""), slot) == 0
    with pytest.raises(SettingsError, match="sms_reminders"):
        reminders.offsets("24 hours")


def test_a_status_change_is_texted_in_the_citizens_language(demo_db):
    with demo_db.write() as session:
        complaint = tickets.file_ticket(session, kind=TicketKind.COMPLAINT, subject="طريق", body="حفرة",
                                        category="roads", mobile="0551234567", today=dt.date(2030, 1, 1),
                                        actor="public")
        tickets.move(session, complaint, TicketStatus.UNDER_REVIEW, "staff", note="داخلي")
        appointment = book(session, 1, dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.UTC),
                           dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        outbox.queue(session, appointment.citizen.mobile, "booked", "en", appointment)
        directive = tickets.issue_directive(session, appointment=appointment, text="متابعة",
                                            department=tickets.department_by_code(session, "MUN"),
                                            due_date=dt.date(2030, 2, 1), today=dt.date(2030, 1, 6), actor="gov")
        tickets.move(session, directive, TicketStatus.RESOLVED, "staff")
        texts = [(m.to, m.language, m.body) for m in session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.body != "booked").order_by(OutboxMessage.id))]
        assert texts == [
            ("+966551234567", "ar", f"تواصل: أصبحت حالة طلبك {complaint.reference}: قيد الدراسة. "
                                    "تابعه برقمه في صفحة المتابعة."),
            (appointment.citizen.mobile, "en", "Tawasul: the follow-up of HH the Governor's directive on your "
                                               f"meeting ({appointment.reference}) is now resolved."),
        ]


# --- the board and the command ---

def test_permanent_failures_show_on_the_board_with_their_reason(web_app, login, settings):
    from web import db_of
    db = db_of(web_app)
    queue(db, "down")
    with FakeGateway() as fake:
        fake.plan = {"down": ["500"] * 10}
        config = sms_settings(settings, url=fake.url)
        sender = Sender(config, db, Gateway(config))
        for _ in range(10):
            sender.send_due()
        assert fake.attempts("down") == 3
    client = login("staff")
    page = client.get("/board/").get_data(as_text=True)
    assert 'id="sms-failures"' in page and "رسالة واحدة لم تُرسل" in page
    assert "3 attempts, the last: HTTP 500 Internal Server Error" in page and "+9665•••••567" in page
    page = client.get("/board/?lang=en").get_data(as_text=True)
    assert "1 SMS message could not be sent" in page


def run_cli(settings, *args):
    env = {**os.environ, "TAWASUL_STATE_DIR": str(settings.state_dir), "TAWASUL_DEMO": "1"}
    return subprocess.run([sys.executable, "-m", "tawasul", "sms", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_command_says_when_disabled_and_refuses_bad_settings(settings):
    settings.state_dir.mkdir(parents=True)
    done = run_cli(settings, "send", "--once")
    assert done.returncode == 0 and "SMS sender disabled" in done.stdout
    (settings.state_dir / "tawasul.toml").write_text(
        'sms_gateway_url = "http://127.0.0.1:9/x"\nsms_request = "unifonic-json"\n')
    done = run_cli(settings, "send", "--once")
    assert done.returncode == 2 and done.stderr.strip().endswith("unifonic-json needs app_sid")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_confirmation_page_says_whether_its_sms_went(web_app, login, settings):
    from web import db_of
    db = db_of(web_app)
    with db.write() as session:
        appointment = book(session, 1, dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.UTC),
                           dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        outbox.notify(session, booking.schedule(session), appointment, "booked", "ar")
        reference = appointment.reference
    client = login("staff")
    assert "في قائمة الإرسال إلى +966501234567" in client.get(f"/booking/{reference}").get_data(as_text=True)
    with FakeGateway() as fake:
        config = sms_settings(settings, url=fake.url)
        Sender(config, db, Gateway(config)).send_due()
    assert "أُرسلت إلى +966501234567" in client.get(f"/booking/{reference}").get_data(as_text=True)


def test_a_message_on_its_last_attempt_is_never_claimed_again(db, settings):
    queue(db, "last")
    config = sms_settings(settings)
    sender = Sender(config, db, Gateway(config))
    now = utcnow()
    for n in range(3):
        assert sender.claim(now + dt.timedelta(seconds=4 * n))
    assert sender.claim(now + dt.timedelta(seconds=20)) is None


def test_the_sender_refuses_bad_reminders_or_poll_at_once(db, settings):
    config = sms_settings(settings)
    with pytest.raises(SettingsError, match="sms_reminders"):
        Sender(dataclasses.replace(config, sms_reminders="tomorrow"), db, Gateway(config))
    with pytest.raises(SettingsError, match="sms_poll_seconds"):
        Sender(dataclasses.replace(config, sms_poll_seconds=0), db, Gateway(config))


def test_the_migration_keeps_queued_and_sent_messages(db_url):
    from alembic import command
    from alembic.config import Config

    from tawasul.db import MIGRATIONS, make_engine, upgrade

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    command.upgrade(config, "0007")
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO outbox_message (\"to\", body, language, created_at, sent_at) VALUES "
            "('+966551234567', 'old sent', 'ar', '2026-11-01 08:00:00', '2026-11-01 08:01:00'), "
            "('+966551234567', 'old queued', 'en', '2026-11-02 08:00:00', NULL)"))
    upgrade(db_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT body, key, status, attempts, due_at FROM outbox_message ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r[:4]) for r in rows] == [("old sent", "m1", "sent", 0), ("old queued", "m2", "queued", 0)]
    assert str(rows[1].due_at).startswith("2026-11-02 08:00")


def test_failed_messages_are_queued_again_by_the_command(settings):
    from click.testing import CliRunner

    from tawasul.cli import main
    from tawasul.db import Database, upgrade

    settings.state_dir.mkdir(parents=True)
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    queue(db, "refused", "fine")
    with FakeGateway() as fake:
        fake.plan = {"refused": ["400"]}
        config = sms_settings(settings, url=fake.url)
        Sender(config, db, Gateway(config)).send_due()
        assert statuses(db) == {"refused": ("failed", 1), "fine": ("sent", 1)}
        run = CliRunner().invoke(main, ["--state-dir", str(settings.state_dir), "sms", "retry"])
        assert run.exit_code == 0 and "1 failed message(s) queued again" in run.output
        assert statuses(db) == {"refused": ("queued", 0), "fine": ("sent", 1)}
        Sender(config, db, Gateway(config)).send_due()
        assert statuses(db) == {"refused": ("sent", 1), "fine": ("sent", 1)}
        assert set(fake.delivered) == {"refused", "fine"}
    db.dispose()


def test_a_failing_gateway_gets_one_request_a_round(db, settings):
    queue(db, "a", "b", "c")
    with FakeGateway() as fake:
        fake.plan = {"a": ["500"], "b": ["500"], "c": ["500"]}
        config = sms_settings(settings, url=fake.url, sms_retry_seconds=60, sms_retry_max_seconds=60)
        sender = Sender(config, db, Gateway(config))
        assert sender.send_due(pause_on_retry=True) == 1 and len(fake.requests) == 1
        assert sender.send_due() == 2 and len(fake.requests) == 3  # --once: every due message
