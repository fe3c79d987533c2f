"""Sign-in, its throttle, CSRF, roles on every route, language and error pages (Flask test client)."""
import re

import pytest
import sqlalchemy as sa

from tawasul.models import AuditEntry, Role
from tests.conftest import csrf_token

ROLE_OF = {"staff": Role.STAFF, "governor_office": Role.GOVERNOR_OFFICE, "it_admin": Role.IT_ADMIN}


def post_login(client, username, password, token=None, address="127.0.0.1"):
    return client.post("/login", data={"csrf_token": token or csrf_token(client), "username": username,
                                       "password": password}, environ_base={"REMOTE_ADDR": address})


def test_sign_in_and_out(web_app, client):
    response = post_login(client, "staff", web_app.demo_passwords["staff"])
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "تسجيل الخروج" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert "دخول الموظفين" in client.get("/").get_data(as_text=True)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(web_app, client):
    wrong = post_login(client, "staff", "not-the-password")
    unknown = post_login(client, "nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "غير صحيحة" in wrong.get_data(as_text=True)
    assert wrong.get_data(as_text=True).count("غير صحيحة") == unknown.get_data(as_text=True).count("غير صحيحة")


def test_five_failures_make_the_name_wait_whether_or_not_it_is_an_account(web_app, client):
    """No lockout (tests/unit/test_users.py has the throttle's rules): a wait, said the same way."""
    pages = []
    for username, address in (("it_admin", "10.0.0.1"), ("no_such_account", "10.0.0.2")):
        for _ in range(5):
            assert post_login(client, username, "wrong-password", address=address).status_code == 401
        waiting = post_login(client, username, web_app.demo_passwords["it_admin"], address=address)
        assert waiting.status_code == 429 and 0 < int(waiting.headers["Retry-After"]) <= 15
        pages.append(re.sub(r"\d+|value=\"[^\"]*\"", "", waiting.get_data(as_text=True)))  # the name typed, the token
    assert "حاول مرة أخرى بعد" in pages[0] and pages[0] == pages[1]
    with web_app.extensions["tawasul.db"].read() as session:
        assert "user.login" not in session.scalars(sa.select(AuditEntry.action)).all()


def test_sign_in_without_the_csrf_token_is_refused(web_app, client):
    response = client.post("/login", data={"username": "staff", "password": web_app.demo_passwords["staff"]})
    assert response.status_code == 400


def test_sign_in_is_rate_limited_per_address(web_app, client):
    statuses = [post_login(client, f"nobody{i}", "x" * 12).status_code for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert "طلبات كثيرة" in post_login(client, "nobody", "x" * 12).get_data(as_text=True)


def test_an_open_redirect_after_sign_in_is_not_followed(web_app, client):
    response = client.post("/login?next=//evil.example/", data={
        "csrf_token": csrf_token(client), "username": "staff", "password": web_app.demo_passwords["staff"]})
    assert response.headers["Location"] == "/"


def test_cookies_are_http_only_and_same_site(web_app, client):
    post_login(client, "staff", web_app.demo_passwords["staff"])
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_language_switch_is_remembered_and_arabic_is_the_default(client):
    assert 'dir="rtl"' in client.get("/").get_data(as_text=True)
    page = client.get("/?lang=en").get_data(as_text=True)
    assert 'dir="ltr"' in page and "Reception centres" in page
    assert 'lang="en"' in client.get("/").get_data(as_text=True)


def test_error_pages_are_translated_and_leak_nothing(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and "الصفحة غير موجودة" in response.get_data(as_text=True)


def _routes_with_roles(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        roles = getattr(view, "roles", None)
        if roles:
            url = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
            yield url, rule.methods - {"HEAD", "OPTIONS"}, roles


def test_every_role_protected_route_refuses_other_roles_and_strangers(web_app):
    checked = 0
    # One sign-in per role (signing in once per route would run into the sign-in rate limit).
    signed_in = {}
    for username in ROLE_OF:
        signed_in[username] = web_app.test_client()
        assert post_login(signed_in[username], username, web_app.demo_passwords[username]).status_code == 302
    for url, methods, roles in _routes_with_roles(web_app):
        for method in methods:
            anonymous = web_app.test_client().open(url, method=method)
            assert anonymous.status_code in (302, 400, 401), (url, method)
            for username, role in ROLE_OF.items():
                client = signed_in[username]
                status = client.open(url, method=method).status_code
                if role in roles:
                    assert status != 403, (url, method, username)
                else:
                    assert status in (403, 400), (url, method, username, status)
                checked += 1
    assert checked >= 3  # every feature's routes are walked with every role


@pytest.mark.parametrize("path", ["/", "/login", "/healthz"])
def test_security_headers_on_every_page(client, path):
    headers = client.get(path).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_the_desk_lists_the_days_appointments_with_both_calendars(web_app, login):
    import datetime as dt

    from tawasul import booking
    from tawasul.models import AppointmentKind
    from tawasul.validation import make_national_id

    with web_app.extensions["tawasul.db"].write() as session:
        citizen = booking.find_or_register_citizen(session, make_national_id("1", "12121212"), "فهد الحربي",
                                                   "0551234567")
        at = dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.timezone.utc)  # 09:00 in Riyadh, a Sunday
        appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=at,
                                   centre=booking.centre_by_code(session, "BDR"), actor="test")
    page = login("staff").get("/desk/?date=2030-01-06").get_data(as_text=True)
    assert "09:00" in page and appointment.reference in page and "فهد الحربي" in page
    assert "مركز تواصل - محافظة بدر" in page and "محجوز" in page
    assert "2 رمضان 1451 هـ" in page  # 6 January 2030 is 2 Ramadan 1451 AH
    assert make_national_id("1", "12121212") not in page
