"""Accounts on the web: where sign-in may send you, sessions that can be ended, the forced and the
ordinary password change, and IT's accounts page (Flask test client, CSRF on)."""
import re
import time

import pytest
import sqlalchemy as sa
from werkzeug.security import check_password_hash

from tawasul import users
from tawasul.models import AuditEntry, User
from tests.conftest import csrf_token

NEW = "a quiet harbour at dawn"


def sign_in(client, username, password, next_=None, address="127.0.0.1"):
    return client.post("/login" + (f"?next={next_}" if next_ else ""), environ_base={"REMOTE_ADDR": address},
                       data={"csrf_token": csrf_token(client), "username": username, "password": password})


def post(client, path, data=None, page="/"):
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(page).get_data(as_text=True)).group(1)
    return client.post(path, data={"csrf_token": token, **(data or {})})


def account(web_app, username) -> User:
    with web_app.extensions["tawasul.db"].read() as session:
        user = users.by_username(session, username)
        session.expunge(user)
        return user


# --------------------------------------------------------------------------- a. open redirect

@pytest.mark.parametrize("next_", [
    "/%09/evil.example/",        # a tab: browsers drop it and read //evil.example/
    "/%0a/evil.example/",        # a newline, likewise
    "/%5Cevil.example/",         # a backslash: browsers read /\ as //
    "%5C%5Cevil.example/",
    "https://evil.example/",
    "//evil.example/",
    "/%E3%80%80/evil.example/",  # an ideographic space
    "/%E2%80%8B/evil.example/",  # a zero-width space
])
def test_open_redirect_after_sign_in_goes_home_instead(web_app, client, next_):
    response = sign_in(client, "staff", web_app.demo_passwords["staff"], next_)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_local_next_page_is_followed_after_sign_in(web_app, client):
    response = sign_in(client, "staff", web_app.demo_passwords["staff"], "/desk/%3Fdate%3D2030-01-06")
    assert response.headers["Location"] == "/desk/?date=2030-01-06"


# --------------------------------------------------------------------------- b. no lockout

def test_lockout_as_a_weapon_guesses_from_elsewhere_do_not_keep_the_owner_out(web_app, login):
    client = login("it_admin")  # the owner signs in from their usual place (127.0.0.1) ...
    post(client, "/logout")
    for attacker in ("10.6.6.1", "10.6.6.2"):  # ... guesses from two other addresses ...
        for _ in range(5):
            sign_in(web_app.test_client(), "it_admin", "wrong password", address=attacker)
    assert sign_in(client, "it_admin", web_app.demo_passwords["it_admin"]).status_code == 302  # ... owner in
    # (from a third address the account must wait: tests/unit/test_users.py)


def test_lockout_as_an_oracle_every_refusal_costs_one_password_hash(web_app, monkeypatch):
    """A locked account used to answer in under a millisecond, against 130-170 ms for a checked password."""
    for _ in range(5):
        sign_in(web_app.test_client(), "staff", "wrong password", address="10.5.5.1")
    checked = []
    real = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash", lambda *args: checked.append(1) or real(*args))
    for name in ("staff", "no_such_account"):
        response = sign_in(web_app.test_client(), name, web_app.demo_passwords["staff"], address="10.5.5.2")
        assert response.status_code in (401, 429)
    assert checked == [1, 1]


# --------------------------------------------------------------------------- c. sessions that end

def copy_of_session(web_app, client):
    thief = web_app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def test_sessions_cannot_be_revoked_a_copied_cookie_stops_working_after_sign_out(web_app, login):
    client = login("staff")
    thief = copy_of_session(web_app, client)
    assert thief.get("/desk/").status_code == 200
    assert post(client, "/logout").status_code == 302
    assert thief.get("/desk/").status_code == 302  # to the sign-in page
    assert "دخول الموظفين" in thief.get("/").get_data(as_text=True)


def test_sessions_cannot_be_revoked_a_password_change_ends_every_other_session(web_app, login):
    client = login("staff")
    thief = copy_of_session(web_app, client)
    changed = post(client, "/account/password", {"current_password": web_app.demo_passwords["staff"],
                                                 "password": NEW, "repeat": NEW}, page="/account/password")
    assert changed.status_code == 302
    assert client.get("/desk/").status_code == 200  # this session goes on
    assert thief.get("/desk/").status_code == 302
    assert check_password_hash(account(web_app, "staff").password_hash, NEW)


def test_sessions_cannot_be_revoked_disable_and_role_change_end_sessions(web_app, login):
    staff = login("staff")
    admin = web_app.test_client()
    assert sign_in(admin, "it_admin", web_app.demo_passwords["it_admin"]).status_code == 302
    staff_id = account(web_app, "staff").id
    post(admin, f"/admin/users/{staff_id}/role", {"role": "governor_office"}, page="/admin/users")
    assert staff.get("/desk/").status_code == 302
    assert account(web_app, "staff").role.value == "governor_office"


def test_a_session_ends_after_session_idle_minutes_without_a_request(web_app, login):
    client = login("staff")
    assert client.get("/desk/").status_code == 200
    with client.session_transaction() as session:
        session["_seen"] = int(time.time()) - 29 * 60
    assert client.get("/desk/").status_code == 200  # 29 minutes idle: still signed in, and seen now
    with client.session_transaction() as session:
        assert session["_seen"] >= int(time.time()) - 60
        session["_seen"] = int(time.time()) - 31 * 60
    assert client.get("/desk/").status_code == 302


# --------------------------------------------------------------------------- passwords

def test_change_my_password_refuses_a_wrong_current_password_and_a_weak_new_one(web_app, login):
    client = login("staff")
    for data, message in (
            ({"current_password": "not it", "password": NEW, "repeat": NEW}, "ليست كلمة المرور الحالية"),
            ({"current_password": web_app.demo_passwords["staff"], "password": "sunshine2024",
              "repeat": "sunshine2024"}, "شائعة جداً"),
            ({"current_password": web_app.demo_passwords["staff"], "password": NEW, "repeat": NEW + "!"},
             "غير متطابقين")):
        response = post(client, "/account/password", data, page="/account/password")
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    english = post(client, "/account/password?lang=en", {"current_password": web_app.demo_passwords["staff"],
                                                         "password": "short", "repeat": "short"},
                   page="/account/password")
    assert "must have at least 12 characters" in english.get_data(as_text=True)
    assert check_password_hash(account(web_app, "staff").password_hash, web_app.demo_passwords["staff"])


def test_demo_accounts_are_not_asked_to_change_their_password(web_app, login):
    response = login("governor_office").get("/desk/")
    assert response.status_code == 200


def test_it_resets_a_password_shown_once_and_the_user_must_choose_a_new_one(web_app, login):
    admin = login("it_admin")
    staff_id = account(web_app, "staff").id
    reset = post(admin, f"/admin/users/{staff_id}/password", page="/admin/users")
    page = reset.get_data(as_text=True)
    assert reset.status_code == 200 and reset.headers["Cache-Control"] == "no-store"
    one_time = re.search(r'id="handed-password">([^<]+)<', page).group(1)
    assert one_time not in admin.get("/admin/users").get_data(as_text=True)  # shown once
    assert "handed" not in str(admin.get_cookie("session").value)

    user = web_app.test_client()
    assert sign_in(user, "staff", web_app.demo_passwords["staff"]).status_code == 401  # the old one is gone
    signed_in = sign_in(user, "staff", one_time)
    assert signed_in.headers["Location"] == "/account/password"
    for path in ("/", "/desk/", "/booking/", "/tickets/"):
        response = user.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/account/password", path
    assert "عيّن فريق التقنية كلمة مرورك" in user.get("/account/password").get_data(as_text=True)
    changed = post(user, "/account/password", {"current_password": one_time, "password": NEW, "repeat": NEW},
                   page="/account/password")
    assert changed.status_code == 302 and user.get("/desk/").status_code == 200
    assert not account(web_app, "staff").must_change_password


# --------------------------------------------------------------------------- IT's accounts page

def test_it_adds_an_account_with_a_one_time_password(web_app, login):
    admin = login("it_admin")
    added = post(admin, "/admin/users", {"username": "Reem", "full_name": "ريم العنزي", "role": "staff"},
                 page="/admin/users")
    page = added.get_data(as_text=True)
    assert added.status_code == 200 and "تمت إضافة الحساب reem" in page
    one_time = re.search(r'id="handed-password">([^<]+)<', page).group(1)
    user = account(web_app, "reem")
    assert user.must_change_password and check_password_hash(user.password_hash, one_time)
    taken = post(admin, "/admin/users", {"username": "reem", "role": "staff"}, page="/admin/users")
    assert taken.status_code == 400 and "مستخدم لحساب آخر" in taken.get_data(as_text=True)


def test_it_disables_and_enables_an_account_and_cannot_lock_itself_out(web_app, login):
    admin = login("it_admin")
    staff_id, own_id = account(web_app, "staff").id, account(web_app, "it_admin").id
    post(admin, f"/admin/users/{staff_id}/active", {"active": "0"}, page="/admin/users")
    assert not account(web_app, "staff").active
    assert sign_in(web_app.test_client(), "staff", web_app.demo_passwords["staff"]).status_code == 401
    post(admin, f"/admin/users/{staff_id}/active", {"active": "1"}, page="/admin/users")
    assert account(web_app, "staff").active
    refused = post(admin, f"/admin/users/{own_id}/active", {"active": "0"}, page="/admin/users")
    assert refused.status_code == 302 and account(web_app, "it_admin").active
    assert "هذا حسابك أنت" in admin.get("/admin/users").get_data(as_text=True)
    with web_app.extensions["tawasul.db"].read() as session:
        actions = session.scalars(sa.select(AuditEntry.action).where(AuditEntry.actor == "it_admin")).all()
    assert actions[-2:] == ["user.disable", "user.enable"]


def test_it_sees_the_recent_failed_sign_ins(web_app, login):
    for _ in range(2):
        sign_in(web_app.test_client(), "staf", "wrong password", address="10.4.4.4")
    page = login("it_admin").get("/admin/users").get_data(as_text=True)
    failures = page[page.index('id="failures"'):]
    assert "staf" in failures and "10.4.4.4" in failures and "<td>2</td>" in failures


def test_the_accounts_page_is_for_it_only(web_app, login):
    assert login("staff").get("/admin/users").status_code == 403
