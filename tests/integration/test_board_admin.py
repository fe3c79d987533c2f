"""The status board and IT administration against the real Asterisk (provisioned_asterisk) with
a real baresip centre phone: the board shows it registered within 2 seconds, the alert for an
upcoming session goes when it registers, the one-click test call reaches the echo (the phone
answers: CALL_ESTABLISHED), Asterisk's health is shown, and apply from the page works."""
from __future__ import annotations

import datetime as dt
import re
import secrets
import time

import pytest
import sqlalchemy as sa

from tawasul import users
from tawasul.models import Appointment, AppointmentKind, Centre, Citizen, Role, utcnow
from tests.conftest import csrf_token
from tests.phones import phones  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
BDR = "centre-bdr-1"


@pytest.fixture
def it_client(provisioned_asterisk):
    from web import create_app, limiter

    p = provisioned_asterisk
    import dataclasses
    app = create_app({"TAWASUL_SETTINGS": dataclasses.replace(p.settings, demo=True), "TESTING": True})
    app.extensions["tawasul.runtime"] = p.runtime
    limiter.reset()
    name, password = f"itboard{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    with p.db.write() as session:
        users.create_user(session, name, Role.IT_ADMIN, "IT", password=password)
    client = app.test_client()
    r = client.post("/login", data={"csrf_token": csrf_token(client), "username": name, "password": password})
    assert r.status_code == 302
    yield client
    app.extensions["tawasul.db"].dispose()


@pytest.fixture
def upcoming_bdr_session(provisioned_asterisk):
    """A video appointment at Badr in 10 minutes (removed afterwards, so no other test routes it)."""
    db = provisioned_asterisk.db
    with db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one()
        citizen = Citizen(national_id=f"19{secrets.randbelow(10**8):08d}", name="Board test", mobile="+966500000009")
        appt = Appointment(reference=f"BRD{secrets.token_hex(3).upper()}", checkin_code="4321", citizen=citizen,
                           kind=AppointmentKind.VIDEO, slot_minutes=15, centre=centre, seat=97,
                           slot_start=utcnow().replace(microsecond=0) + dt.timedelta(minutes=10))
        session.add(appt)
        session.flush()
        ids = (appt.id, citizen.id)
    yield
    with db.write() as session:
        session.execute(sa.delete(Appointment).where(Appointment.id == ids[0]))
        session.execute(sa.delete(Citizen).where(Citizen.id == ids[1]))


def device_state(client, user):
    return client.get("/board/status.json").get_json()["devices"][user]


def test_board_registration_alert_and_echo_test_call(it_client, phones, upcoming_bdr_session):  # noqa: F811
    client = it_client
    deadline = time.monotonic() + 10
    while device_state(client, BDR)["registered"] and time.monotonic() < deadline:
        time.sleep(0.5)  # a phone from an earlier test may still be unregistering
    status = client.get("/board/status.json").get_json()
    assert status["ami_error"] is None
    assert not status["devices"][BDR]["registered"]
    assert any(a["centre"] == "BDR" for a in status["alerts"])
    page = client.get("/board/").get_data(as_text=True)
    assert 'data-centre="BDR"' in page and "ami-error" not in page

    phone = phones.start(BDR, register=False)
    phone.wait_registered(15)
    registered_at = time.monotonic()
    while not device_state(client, BDR)["registered"]:
        assert time.monotonic() - registered_at < 2, "the board did not show the registration within 2 s"
        time.sleep(0.1)
    status = client.get("/board/status.json").get_json()
    assert not any(a["centre"] == "BDR" for a in status["alerts"])
    state = status["devices"][BDR]
    assert state["via_tls"] and state["user_agent"] and state["last_seen"]
    page = client.get("/board/").get_data(as_text=True)
    row = re.search(rf'<tr data-device="{BDR}" class="registered">.*?</tr>', page, re.S).group(0)
    assert "vp8" in row and "SRTP (sdes)" in row and "TLS" in row

    since = time.monotonic()
    r = client.post(f"/board/test-call/{BDR}", data={"csrf_token": csrf_token(client, "/board/")})
    assert r.status_code == 302
    # placed at once (the phone has not answered yet): an Async Originate's answer is "queued"
    assert "تم إجراء مكالمة الاختبار" in client.get("/board/").get_data(as_text=True)
    phone.wait_event("CALL_INCOMING", 15, since=since)
    phone.accept()
    phone.wait_event("CALL_ESTABLISHED", 15, since=since)
    phone.hangup()


def test_health_and_apply_from_the_page(it_client):
    client = it_client
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="health"' in page and re.search(r"\d+\.\d+\.\d+", page)
    diff = client.get("/admin/config").get_data(as_text=True)
    assert 'id="apply-form"' in diff
    r = client.post("/admin/config/apply", data={"csrf_token": csrf_token(client, "/admin/config")})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert 'id="apply-result"' in r.get_data(as_text=True) and "applied in" in r.get_data(as_text=True)
