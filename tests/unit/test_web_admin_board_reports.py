"""IT administration, the status board and reports through the Flask test client: every form, its
refusals (nothing written), role checks, the config diff masking secrets, AMI unreachable."""
import re

import pytest
import sqlalchemy as sa

from tawasul import ami
from tawasul.models import AuditEntry, Centre, Device, GovernorSchedule, Governorate, Holiday
from tests.conftest import csrf_token


@pytest.fixture(autouse=True)
def no_ami(monkeypatch):
    """No Asterisk here: every AMI login fails at once, as when Asterisk is down."""
    def refuse(*args, **kwargs):
        raise ami.AmiUnavailable("no AMI login at 127.0.0.1:5038 (is Asterisk running?)")
    monkeypatch.setattr(ami, "run_actions_blocking", refuse)


def db(web_app):
    return web_app.extensions["tawasul.db"]


def count(web_app, model):
    with db(web_app).read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def post(client, path, data, form_path=None):
    return client.post(path, data={"csrf_token": csrf_token(client, form_path or path), **data})


CENTRE = {"code": "TSTC", "name_ar": "مركز الحناكية", "name_en": "Hanakiyah centre", "address": "",
          "allowed_networks": "10.9.8.0/24, 127.0.0.0/8", "prompt_language": "ar", "active": "y"}


@pytest.mark.parametrize("path,allowed", [
    ("/admin/", {"it_admin"}), ("/admin/centres", {"it_admin"}), ("/admin/config", {"it_admin"}),
    ("/board/", {"it_admin", "staff"}), ("/reports/", {"it_admin", "governor_office"}),
    ("/reports/days.csv", {"it_admin", "governor_office"})])
def test_roles(web_app, client, login, path, allowed):
    assert client.get(path).status_code == 302  # sign in first
    for user in ("staff", "governor_office", "it_admin"):
        login(user)
        assert client.get(path).status_code == (200 if user in allowed else 403), (user, path)
        with client.session_transaction() as web_session:  # sign out
            web_session.clear()


def test_add_centre_and_refusals(web_app, client, login):
    login("it_admin")
    with db(web_app).read() as session:
        gov = session.scalars(sa.select(Governorate).order_by(Governorate.id)).first().id
    before = count(web_app, Centre)
    bad = post(client, "/admin/centres/new", {**CENTRE, "governorate_id": gov, "allowed_networks": "10.9.8.1/24"})
    assert bad.status_code == 400 and "has host bits set" in bad.get_data(as_text=True)
    bad = post(client, "/admin/centres/new", {**CENTRE, "governorate_id": gov, "allowed_networks": "nonsense"})
    assert bad.status_code == 400 and "CIDR" in bad.get_data(as_text=True)
    dup = post(client, "/admin/centres/new", {**CENTRE, "governorate_id": gov, "code": "BDR"})
    assert dup.status_code == 400 and "مستخدم من قبل" in dup.get_data(as_text=True)
    no_csrf = client.post("/admin/centres/new", data={**CENTRE, "governorate_id": gov})
    assert no_csrf.status_code == 400
    assert count(web_app, Centre) == before
    ok = post(client, "/admin/centres/new", {**CENTRE, "governorate_id": gov})
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/admin/config")
    with db(web_app).read() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "TSTC")).one()
        assert centre.allowed_networks == "10.9.8.0/24, 127.0.0.0/8"
        assert session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "admin.centre.create")) is not None
        centre_id = centre.id
    edit = post(client, f"/admin/centres/{centre_id}", {**CENTRE, "governorate_id": gov,
                                                         "allowed_networks": "10.9.0.0/16"})
    assert edit.status_code == 302


def test_governorate_form(web_app, client, login):
    login("it_admin")
    before = count(web_app, Governorate)
    assert post(client, "/admin/governorates", {"code": "1X", "name_ar": "a", "name_en": "b"}).status_code == 400
    assert post(client, "/admin/governorates", {"code": "MED", "name_ar": "a", "name_en": "b"}).status_code == 400
    assert count(web_app, Governorate) == before
    assert post(client, "/admin/governorates", {"code": "NEWG", "name_ar": "ا", "name_en": "New"}).status_code == 302
    assert count(web_app, Governorate) == before + 1


def test_add_device_shows_profile_never_secret(web_app, client, login):
    login("it_admin")
    with db(web_app).read() as session:
        bdr = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one().id
    before = count(web_app, Device)
    bad = post(client, "/admin/devices", {"kind": "centre_phone", "centre_id": bdr, "sip_user": "centre-bdr-1",
                                          "vendor": "yealink", "mac": ""})
    assert bad.status_code == 400 and "مستخدم من قبل" in bad.get_data(as_text=True)
    bad = post(client, "/admin/devices", {"kind": "centre_phone", "centre_id": 0, "sip_user": "centre-x-2",
                                          "vendor": "yealink", "mac": "zz"})
    assert bad.status_code == 400
    assert count(web_app, Device) == before
    ok = post(client, "/admin/devices", {"kind": "centre_phone", "centre_id": bdr, "sip_user": "centre-bdr-2",
                                         "vendor": "yealink", "mac": "00:15:65:12:34:56", "label": "Badr 2"})
    page = ok.get_data(as_text=True)
    assert ok.status_code == 200 and "device-created" in page
    assert "001565123456.cfg" in page and "tawasul phones token centre-bdr-2" in page
    from tawasul.vault import Vault
    with db(web_app).read() as session:
        device = session.scalars(sa.select(Device).where(Device.sip_user == "centre-bdr-2")).one()
        secret = Vault.for_settings(web_app.extensions["tawasul.settings"]).decrypt(device.secret_encrypted)
    assert secret not in page


def test_schedule_form_and_holidays(web_app, client, login):
    login("it_admin")
    base = {"days": ["6", "0"], "video_start": "09:00", "video_end": "12:00", "slot_minutes": "15",
            "buffer_minutes": "5", "in_person_start": "13:00", "in_person_capacity": "30"}
    bad = post(client, "/admin/schedule", {**base, "video_end": "08:00"})
    assert bad.status_code == 400 and "يجب أن يكون بعد وقت البداية" in bad.get_data(as_text=True)
    bad = post(client, "/admin/schedule", {**base, "in_person_start": "10:00"})
    assert bad.status_code == 400 and "يتداخل مع ساعات الجلسات المرئية" in bad.get_data(as_text=True)
    assert post(client, "/admin/schedule", {**base, "slot_minutes": "2"}).status_code == 400
    assert post(client, "/admin/schedule", {**base, "video_start": "9h"}).status_code == 400
    with db(web_app).read() as session:
        assert session.scalars(sa.select(GovernorSchedule)).first().session_days == "6,0,1,2,3"
    assert post(client, "/admin/schedule", {**base, "slot_minutes": "20"}).status_code == 302
    with db(web_app).read() as session:
        s = session.scalars(sa.select(GovernorSchedule)).first()
        assert (s.session_days, s.slot_minutes) == ("0,6", 20)
    assert post(client, "/admin/schedule/holidays", {"day": "2030-09-23", "name": "National day"},
                "/admin/schedule").status_code == 302
    dup = post(client, "/admin/schedule/holidays", {"day": "2030-09-23", "name": "x"}, "/admin/schedule")
    assert dup.status_code == 400 and "هذا اليوم إجازة من قبل" in dup.get_data(as_text=True)
    assert count(web_app, Holiday) == 1


def test_routing_options(web_app, client, login):
    login("it_admin")
    page = client.get("/admin/routing").get_data(as_text=True)
    assert "TAWASUL_EARLY_MINUTES" in page
    # The windows (10 and 15 minutes by default) in Arabic's plural: 3-10 take دقائق, 11 and up دقيقة.
    assert "<dd>10 دقائق</dd>" in page and "<dd>15 دقيقة</dd>" in page
    english = client.get("/admin/routing?lang=en").get_data(as_text=True)
    assert "<dd>10 minutes</dd>" in english and "<dd>15 minutes</dd>" in english
    with db(web_app).read() as session:
        bdr = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one().id
    r = post(client, "/admin/routing", {"centre_id": bdr, "prompt_language": "en", "require_code": "y"})
    assert r.status_code == 302
    with db(web_app).read() as session:
        c = session.get(Centre, bdr)
        assert (c.prompt_language, c.require_code) == ("en", True)
    assert post(client, "/admin/routing", {"centre_id": bdr, "prompt_language": "fr"}).status_code == 400


def test_config_diff_masks_secrets(web_app, client, login):
    from provisioning import certs
    certs.ensure_certificates(web_app.extensions["tawasul.settings"])
    login("it_admin")
    page = client.get("/admin/config").get_data(as_text=True)
    from tawasul.ami import USERS, secret
    assert "manager.conf" in page and "pjsip.conf" in page
    for user in USERS:
        assert secret(web_app.extensions["tawasul.settings"], user) not in page
    assert "********" in page
    assert not re.search(r"password_digest\s*=\s*MD5:[0-9a-f]{8}", page)


def test_config_diff_masks_the_fastagi_secret(web_app, client, login):
    from provisioning import certs
    from tawasul.settings import agi_secret
    settings = web_app.extensions["tawasul.settings"]
    certs.ensure_certificates(settings)
    login("it_admin")
    page = client.get("/admin/config").get_data(as_text=True)
    assert "extensions.conf" in page and "TAWASUL_AGI_SECRET = ********" in page
    assert agi_secret(settings) not in page


def test_mask_function():
    from web.admin import mask
    text = "[tawasul]\nsecret = s3cr3t-value\npassword_digest = MD5:abcdef\nx = s3cr3t-value\n"
    out = mask(text, ("s3cr3t-value",))
    assert "s3cr3t" not in out and "abcdef" not in out and out.count("********") == 3


def test_board_says_when_ami_is_unreachable(web_app, client, login):
    login("staff")
    r = client.get("/board/")
    assert r.status_code == 200 and 'id="ami-error"' in r.get_data(as_text=True)
    assert client.get("/board/status.json").get_json()["ami_error"]
    call = post(client, "/board/test-call/centre-bdr-1", {}, "/board/")
    assert call.status_code == 302
    assert "تعذّر إجراء مكالمة الاختبار" in client.get("/board/").get_data(as_text=True)
    assert post(client, "/board/test-call/nobody", {}, "/board/").status_code == 404
    assert client.post("/board/test-call/centre-bdr-1").status_code == 400  # no CSRF token
    login("it_admin")
    assert 'id="ami-error"' in client.get("/admin/").get_data(as_text=True)


def test_reports_page_and_csv(web_app, client, login):
    login("governor_office")
    page = client.get("/reports/?start=2030-01-01&end=2030-01-31").get_data(as_text=True)
    assert 'id="chart-days"' in page and "vendor/chartjs/chart.umd.min.js" in page and "<script>" not in page
    data = client.get("/reports/data.json?start=2030-01-01&end=2030-01-31").get_json()
    assert len(data["days"]) == 31
    for name in ("days", "weeks", "complaints", "overdue"):
        r = client.get(f"/reports/{name}.csv?start=2030-01-01&end=2030-01-07")
        assert r.status_code == 200 and r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    assert client.get("/reports/?start=2030-02-01&end=2030-01-01").status_code == 400
    assert client.get("/reports/?start=nope").status_code == 400
    assert client.get("/reports/nothing.csv").status_code == 404


def test_the_board_alert_counts_minutes_as_arabic_does(web_app):
    from flask import render_template_string
    alert = ('{{ ngettext("Centre %(centre)s has a session (%(ref)s) in %(num)s minute and no registered phone.", '
             '"Centre %(centre)s has a session (%(ref)s) in %(num)s minutes and no registered phone.", n, '
             'centre="BDR", ref="A-1") }}')  # as web/templates/board/index.html says it
    with web_app.test_request_context("/board/?lang=ar"):
        web_app.preprocess_request()
        said = {n: render_template_string(alert, n=n) for n in (1, 2, 7, 12)}
    assert "بعد دقيقة واحدة" in said[1] and "بعد دقيقتين" in said[2]
    assert "بعد 7 دقائق" in said[7] and "بعد 12 دقيقة" in said[12]
