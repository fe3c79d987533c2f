"""Accounts: the password policy, the sign-in throttle that replaced the account lockout, and
`tawasul users` on a new, empty database (no demo mode)."""
import datetime as dt
import hashlib
import sqlite3
from contextlib import closing

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from werkzeug.security import check_password_hash

from tawasul import users
from tawasul.cli import main
from tawasul.models import AuditEntry, Role, User
from tawasul.validation import InvalidInput

NOW = dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.timezone.utc)
GOOD = "plum orchard lantern"


# --------------------------------------------------------------------------- password policy

@pytest.mark.parametrize("password, message", [
    ("Short1!", users.TOO_SHORT),
    ("x" * 201, users.TOO_LONG),
    ("my-name-is-NOURA-ok", users.HAS_USERNAME),
    ("qwerty123456", users.TOO_COMMON),          # in the list as it is
    ("Sunshine2024!!", users.TOO_COMMON),        # a listed word with digits and symbols added
    ("PASSWORD123456789", users.TOO_COMMON),     # case does not help
])
def test_the_password_policy_refuses_weak_passwords_with_a_clear_message(password, message):
    with pytest.raises(InvalidInput) as refused:
        users.check_password_policy("noura", password)
    assert refused.value.field == "password" and refused.value.message == message


def test_the_password_policy_accepts_a_long_uncommon_password_and_generates_them():
    users.check_password_policy("noura", GOOD)
    generated = {users.generate_password() for _ in range(20)}
    assert len(generated) == 20
    for password in generated:
        users.check_password_policy("noura", password)
        assert not set(password) & set("0O1lI")


def test_the_common_password_list_is_shipped_with_the_package():
    assert len(users.common_passwords()) > 19000 and "password" in users.common_passwords()


# --------------------------------------------------------------------------- sign-in and throttle

@pytest.fixture
def account(db):
    with db.write() as session:
        users.create_user(session, "noura", Role.STAFF, "Noura", GOOD)
    return db


def sign_in(db, name, password, address, now):
    with db.write() as session:
        attempt = users.authenticate(session, name, password, address, now=now)
        return (attempt.user.username if attempt.user else None), attempt.retry_after


def test_repeated_failures_make_a_name_wait_longer_each_time_then_not_at_all(account):
    for i in range(users.ACCOUNT_FREE):  # from five addresses, so that only the name's count matters
        assert sign_in(account, "noura", "wrong guess", f"10.0.0.{i}", NOW) == (None, 0)
    assert sign_in(account, "noura", GOOD, "10.0.1.1", NOW) == (None, 15)
    assert sign_in(account, "noura", "wrong guess", "10.0.1.1", NOW + dt.timedelta(seconds=15)) == (None, 0)
    assert sign_in(account, "noura", GOOD, "10.0.1.1", NOW + dt.timedelta(seconds=16)) == (None, 29)
    assert sign_in(account, "noura", GOOD, "10.0.1.1", NOW + dt.timedelta(minutes=16)) == ("noura", 0)


def test_the_throttle_does_not_tell_which_accounts_exist(account):
    """The same answers, to the second, for an account and for a name that is none."""
    def answers(name):
        return [sign_in(account, name, "wrong guess", f"10.0.{len(name)}.{i}", NOW + dt.timedelta(seconds=i))
                for i in range(7)]
    known, unknown = answers("noura"), answers("nobody_at_all")
    assert known == unknown and known[-1] == (None, 13)


def test_lockout_as_a_weapon_failures_from_elsewhere_never_keep_the_owner_out(account):
    assert sign_in(account, "noura", GOOD, "10.9.9.9", NOW) == ("noura", 0)  # the owner's usual place
    later = NOW + dt.timedelta(minutes=1)
    for i in range(10):  # a distributed attacker, five guesses from each of two addresses
        sign_in(account, "noura", "wrong guess", f"10.6.6.{i // 5}", later)
    assert sign_in(account, "noura", GOOD, "10.6.6.99", later)[1] > 0  # elsewhere: wait
    assert sign_in(account, "noura", GOOD, "10.9.9.9", later) == ("noura", 0)  # the owner gets in


def test_one_address_guessing_many_names_must_wait(account):
    for i in range(users.ADDRESS_FREE):
        sign_in(account, f"name{i}", "wrong guess", "10.7.7.7", NOW)
    assert sign_in(account, "noura", GOOD, "10.7.7.7", NOW) == (None, 15)
    assert sign_in(account, "noura", GOOD, "10.7.7.8", NOW) == ("noura", 0)


def test_lockout_as_an_oracle_a_waiting_sign_in_still_checks_a_password_hash(account, monkeypatch):
    """A refused try costs the same hash check as any other, so its timing tells nothing."""
    for i in range(users.ACCOUNT_FREE):
        sign_in(account, "noura", "wrong guess", f"10.0.0.{i}", NOW)
    checked = []
    monkeypatch.setattr(users, "check_password_hash", lambda *args: checked.append(args) or check_password_hash(*args))
    for name in ("noura", "nobody_at_all"):
        for i in range(users.ACCOUNT_FREE):
            sign_in(account, name, "wrong guess", f"10.1.0.{i}", NOW)
    checked.clear()
    assert sign_in(account, "noura", GOOD, "10.2.0.1", NOW)[1] > 0
    assert sign_in(account, "nobody_at_all", GOOD, "10.2.0.1", NOW)[1] > 0
    assert sign_in(account, "someone_new", GOOD, "10.2.0.1", NOW) == (None, 0)
    assert len(checked) == 3


def test_a_disabled_account_cannot_sign_in(account):
    with account.write() as session:
        users.set_active(session, users.by_username(session, "noura"), False, "test")
    assert sign_in(account, "noura", GOOD, "10.0.0.1", NOW) == (None, 0)


def test_recent_failures_are_listed_for_it_by_name_and_address(account):
    for _ in range(3):
        sign_in(account, "noura", "wrong guess", "10.0.0.1", NOW)
    sign_in(account, "ghost", "wrong guess", "10.0.0.2", NOW - dt.timedelta(days=2))
    with account.read() as session:
        rows = users.recent_failures(session, now=NOW)
    assert [(r.username, r.address, r.count) for r in rows] == [("noura", "10.0.0.1", 3)]


def test_session_version_moves_on_every_change_that_must_end_sessions(account):
    with account.write() as session:
        users.create_user(session, "second_it", Role.IT_ADMIN, password="another long passphrase")
        user = users.by_username(session, "noura")
        versions = [user.session_version]
        users.set_password(session, user, None, "test", must_change=True)
        versions.append(user.session_version)
        users.set_role(session, user, Role.GOVERNOR_OFFICE, "test")
        versions.append(user.session_version)
        users.set_active(session, user, False, "test")
        versions.append(user.session_version)
    assert versions == sorted(set(versions)) and len(versions) == 4


def test_the_last_active_it_account_cannot_be_disabled_or_demoted(db):
    with db.write() as session:
        user, _password = users.create_user(session, "only_it", Role.IT_ADMIN)
        for change in (lambda: users.set_active(session, user, False, "test"),
                       lambda: users.set_role(session, user, Role.STAFF, "test")):
            with pytest.raises(InvalidInput, match="last active IT account"):
                change()


# --------------------------------------------------------------------------- tawasul users

@pytest.fixture
def cli(tmp_path):
    """`tawasul users ...` on a new state folder: no demo mode, no database yet."""
    state = tmp_path / "prod"
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(main, ["--state-dir", str(state), "--no-demo", "users", *args], input=input,
                             catch_exceptions=False)
    run.db = state / "tawasul.db"
    return run


def rows(path, query):
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(query).fetchall()


def fingerprint(path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        return hashlib.sha256("\n".join(connection.iterdump()).encode()).hexdigest()


def test_the_first_it_account_is_made_on_an_empty_database_without_demo_mode(cli):
    assert cli("list").output.startswith("no accounts")
    added = cli("add", "Fahad", "--role", "it_admin", "--full-name", "Fahad Al-Harbi",
                input=f"{GOOD}\n{GOOD}\n")
    assert added.exit_code == 0 and "added fahad (it_admin)" in added.output
    assert GOOD not in added.output  # typed, hidden, never echoed
    [(password_hash, must_change)] = rows(cli.db, "select password_hash, must_change_password from user_account")
    assert check_password_hash(password_hash, GOOD) and must_change == 0
    listing = cli("list").output
    assert "fahad" in listing and "it_admin" in listing and "Fahad Al-Harbi" in listing and "never" in listing
    assert rows(cli.db, "select actor, action from audit_log")[0][0].startswith("cli:")


def test_a_generated_password_is_printed_once_and_must_be_changed(cli):
    cli("add", "admin1", "--role", "it_admin", input=f"{GOOD}\n{GOOD}\n")
    added = cli("add", "clerk", "--role", "staff", "--generate")
    password = added.output.strip().rsplit(" ", 1)[-1]
    [(password_hash, must_change)] = rows(cli.db, "select password_hash, must_change_password from user_account "
                                                  "where username = 'clerk'")
    assert check_password_hash(password_hash, password) and must_change == 1
    assert "must-change" in cli("list").output
    reset = cli("passwd", "clerk", "--generate")
    assert reset.exit_code == 0 and password not in reset.output
    assert cli("passwd", "clerk", input="a fresh long passphrase\na fresh long passphrase\n").exit_code == 0
    assert rows(cli.db, "select must_change_password from user_account where username = 'clerk'") == [(0,)]


def test_disable_enable_and_role_are_audited_and_end_sessions(cli):
    cli("add", "admin1", "--role", "it_admin", input=f"{GOOD}\n{GOOD}\n")
    cli("add", "clerk", "--role", "staff", "--generate")
    assert cli("disable", "clerk").output.strip() == "clerk disabled"
    assert "disabled" in cli("list").output
    assert cli("enable", "clerk").exit_code == 0
    assert cli("role", "clerk", "governor_office").output.strip() == "clerk is now governor_office"
    actions = [a for (a,) in rows(cli.db, "select action from audit_log where entity_id = "
                                          "(select id from user_account where username = 'clerk')")]
    assert actions == ["user.create", "user.disable", "user.enable", "user.role"]
    assert rows(cli.db, "select session_version from user_account where username = 'clerk'") == [(3,)]


@pytest.mark.parametrize("args, input, expected", [
    (("add", "clerk", "--role", "staff"), f"{GOOD}\n{GOOD} \n", "password: the two entries differ"),
    (("add", "clerk", "--role", "staff"), "short\nshort\n", "password: must have at least 12 characters"),
    (("add", "clerk", "--role", "staff"), "password123456\npassword123456\n", "password: is too common"),
    (("add", "admin1", "--role", "staff", "--generate"), None, "username: is already taken"),
    (("add", "no way", "--role", "staff", "--generate"), None, "username: letters, digits and underscores"),
    (("passwd", "ghost", "--generate"), None, "username: no account named 'ghost'"),
    (("disable", "admin1"), None, "username: is the last active IT account"),
    (("role", "admin1", "staff"), None, "username: is the last active IT account"),
])
def test_bad_input_is_refused_with_one_line_and_changes_nothing(cli, args, input, expected):
    cli("add", "admin1", "--role", "it_admin", input=f"{GOOD}\n{GOOD}\n")
    before = fingerprint(cli.db)
    result = cli(*args, input=input)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"tawasul: {expected}")
    assert fingerprint(cli.db) == before


def test_a_session_version_bump_is_kept_in_the_database(db):
    with db.write() as session:
        user, _ = users.create_user(session, "clerk", Role.STAFF)
        users.end_sessions(user)
    with db.read() as session:
        assert session.scalar(sa.select(User.session_version).where(User.username == "clerk")) == 1
        assert session.scalars(sa.select(AuditEntry.action)).all() == ["user.create"]


def test_session_idle_minutes_defaults_to_30_and_refuses_less_than_one(tmp_path):
    from tawasul.settings import SettingsError, load

    assert load({"state_dir": tmp_path}, environ={}).session_idle_minutes == 30
    assert load({"state_dir": tmp_path}, environ={"TAWASUL_SESSION_IDLE_MINUTES": "480"}).session_idle_minutes == 480
    with pytest.raises(SettingsError, match="session_idle_minutes"):
        load({"state_dir": tmp_path}, environ={"TAWASUL_SESSION_IDLE_MINUTES": "0"})
