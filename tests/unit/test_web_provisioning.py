"""Phones fetch their profile over the web: per-device token, rate limit, no-store, no leaks."""
from __future__ import annotations

import base64
import dataclasses
import logging

import pytest

from provisioning import phones
from tawasul.vault import Vault
from web import create_app, limiter

YEALINK_USER = "centre-bdr-1"
GRANDSTREAM_USER = "governor-desk-1"


@pytest.fixture
def app(demo_db, settings):
    with demo_db.write() as session:
        for user, vendor, model in ((YEALINK_USER, "yealink", "VP59"), (GRANDSTREAM_USER, "grandstream", "GXV3380")):
            device = phones.find_device(session, user)
            device.vendor, device.model = vendor, model
    app_settings = dataclasses.replace(settings, database_url=demo_db.url, secret_key="test-secret-key")
    app = create_app({"TAWASUL_SETTINGS": app_settings, "TESTING": True,
                      "PROVISIONING_RATE_LIMIT": "20 per minute"})
    limiter.reset()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def device_facts(app, user):
    settings = app.extensions["tawasul.settings"]
    with app.extensions["tawasul.db"].read() as session:
        device = phones.find_device(session, user)
        return (phones.normalize_mac(device.mac), phones.provisioning_token(phones.token_secret(settings), device),
                Vault.for_settings(settings).decrypt(device.secret_encrypted))


def basic(token, user="phone"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def test_yealink_with_the_right_token(app, client):
    mac, token, secret = device_facts(app, YEALINK_USER)
    for response in (client.get(f"/provisioning/{mac}.cfg", headers=basic(token, mac)),):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        text = response.get_data(as_text=True)
        assert text.startswith("#!version:1.0.0.1")
        assert f"account.1.password = {secret}" in text
        assert "account.1.srtp_encryption = 2" in text and "features.speaker_mode.enable = 0" in text
        assert "static.trusted_certificates.url = http://localhost/provisioning/ca.crt" in text


def test_grandstream_with_the_right_token(app, client):
    mac, token, _secret = device_facts(app, GRANDSTREAM_USER)
    response = client.get(f"/provisioning/cfg{mac}.xml", headers=basic(token))
    assert response.status_code == 200 and response.mimetype == "application/xml"
    assert "<P183>2</P183>" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_prober_cannot_tell_unknown_mac_from_wrong_token(app, client):
    mac, token, _ = device_facts(app, YEALINK_USER)
    other_mac, other_token, _ = device_facts(app, GRANDSTREAM_USER)
    refusals = [
        client.get(f"/provisioning/{mac}.cfg", headers=basic("wrong")),           # wrong token
        client.get(f"/provisioning/{mac}.cfg"),                                   # no token
        client.get(f"/provisioning/{mac}.cfg", headers=basic(other_token)),       # another device's token
        client.get("/provisioning/0000deadbeef.cfg", headers=basic(token)),       # unknown MAC
        client.get(f"/provisioning/cfg{mac}.xml", headers=basic(token)),          # not a Grandstream phone
        client.get(f"/provisioning/{other_mac}.cfg", headers=basic(other_token)),  # not a Yealink phone
        client.get("/provisioning/..%2Fetc%2Fpasswd", headers=basic(token)),     # not a profile name
        client.get("/provisioning/", headers=basic(token)),
    ]
    shapes = {(r.status_code, r.get_data(), r.headers["Cache-Control"], r.mimetype) for r in refusals}
    assert len(shapes) == 1
    assert next(iter(shapes))[0] == 404


def test_a_disabled_device_gets_nothing(app, client):
    mac, token, _ = device_facts(app, YEALINK_USER)
    with app.extensions["tawasul.db"].write() as session:
        phones.find_device(session, YEALINK_USER).enabled = False
    assert client.get(f"/provisioning/{mac}.cfg", headers=basic(token)).status_code == 404


def test_rate_limit_per_client_ip(app, client):
    mac, token, _ = device_facts(app, YEALINK_USER)
    codes = [client.get("/provisioning/0000deadbeef.cfg", headers=basic("guess")).status_code for _ in range(20)]
    assert set(codes) == {404}
    limited = client.get(f"/provisioning/{mac}.cfg", headers=basic(token))
    assert limited.status_code == 429 and limited.headers["Cache-Control"] == "no-store"
    other_ip = client.get(f"/provisioning/{mac}.cfg", headers=basic(token),
                          environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other_ip.status_code == 200


def test_secrets_never_reach_the_log(app, client, caplog):
    mac, token, secret = device_facts(app, YEALINK_USER)
    with caplog.at_level(logging.DEBUG):
        assert client.get(f"/provisioning/{mac}.cfg", headers=basic(token)).status_code == 200
        client.get(f"/provisioning/{mac}.cfg", headers=basic(f"wrong-{token}"))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "provisioning: served" in logged and "refused" in logged
    assert token not in logged and secret not in logged


def test_ca_certificate_is_public(app, client, settings):
    assert client.get("/provisioning/ca.crt").status_code == 404
    from tests.unit.phone_helpers import write_test_ca

    ca = write_test_ca(settings.state_dir)
    response = client.get("/provisioning/ca.crt")
    assert response.status_code == 200 and response.data == ca.read_bytes()


def test_phone_provisioning_takes_the_token_by_basic_auth_only(app, client):
    """Review finding 11: a token in the query string ends up in the proxy's logs."""
    mac, token, _ = device_facts(app, YEALINK_USER)
    assert client.get(f"/provisioning/{mac}.cfg?token={token}").status_code == 404
    assert client.get(f"/provisioning/{mac}.cfg", headers=basic(token)).status_code == 200


def test_it_rolls_one_phones_token_and_only_that_one_stops_working(app, client):
    """Review finding 11: a leaked token is revoked one device at a time, by IT, from the devices page."""
    from tests.conftest import csrf_token
    from tests.unit.test_web_auth import post_login

    mac, token, _ = device_facts(app, YEALINK_USER)
    other_mac, other_token, _ = device_facts(app, GRANDSTREAM_USER)
    it = app.test_client()
    with app.extensions["tawasul.db"].write() as session:
        from tawasul import users
        from tawasul.models import Role
        _user, password = users.create_user(session, "it_roll", Role.IT_ADMIN)
        device_id = phones.find_device(session, YEALINK_USER).id
    assert post_login(it, "it_roll", password).status_code == 302
    page = it.post(f"/admin/devices/{device_id}/token", data={"csrf_token": csrf_token(it, "/admin/devices")})
    assert page.status_code == 200
    _mac, new_token, _ = device_facts(app, YEALINK_USER)
    assert new_token != token and new_token in page.get_data(as_text=True)
    assert client.get(f"/provisioning/{mac}.cfg", headers=basic(token)).status_code == 404
    assert client.get(f"/provisioning/{mac}.cfg", headers=basic(new_token)).status_code == 200
    assert client.get(f"/provisioning/cfg{other_mac}.xml", headers=basic(other_token)).status_code == 200
