"""Staff, governor-office and IT accounts: the password policy, sign-in with its throttle, and the
changes IT makes (add, reset, disable, role). Every change is in the audit log, and every change that
should end a person's sessions bumps their session version (checked on every web request)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import math
import secrets
from functools import cache
from importlib.resources import files

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tawasul import audit
from tawasul.models import LoginFailure, Role, User, utcnow
from tawasul.validation import InvalidInput


def N_(text: str) -> str:
    """Marks a message for translation (the web shows it in Arabic); returns it unchanged."""
    return text


# --------------------------------------------------------------------------- password policy

MIN_LENGTH = 12
MAX_LENGTH = 200
TOO_SHORT = N_("must have at least 12 characters")
TOO_LONG = N_("must have at most 200 characters")
HAS_USERNAME = N_("must not contain the username")
TOO_COMMON = N_("is too common: choose one that is harder to guess")
MISMATCH = N_("the two entries differ")
# A generated password: no look-alike characters (0/O, 1/l/I), 16 of them (about 90 bits).
ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased (tawasul/data/common-passwords.NOTICE)."""
    data = files("tawasul").joinpath("data", "common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode("utf-8").splitlines() if line.strip())


def _is_common(password: str) -> bool:
    """In the list as it is, or once the digits and symbols added at its end are taken off
    ('sunshine2024!!' is 'sunshine')."""
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*()-_=+.,;:?~ ")
    return lowered in common_passwords() or (stem != lowered and stem in common_passwords())


def check_password_policy(username: str, password: str) -> None:
    """Refuses (InvalidInput on "password") a password that is too short or long, contains the
    username, or is a common one."""
    password = password or ""
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", TOO_SHORT)
    if len(password) > MAX_LENGTH:
        raise InvalidInput("password", TOO_LONG)
    name = normalize(username)
    if len(name) >= 3 and name in password.lower():
        raise InvalidInput("password", HAS_USERNAME)
    if _is_common(password):
        raise InvalidInput("password", TOO_COMMON)


def generate_password() -> str:
    while True:
        password = "".join(secrets.choice(ALPHABET) for _ in range(16))
        if not _is_common(password):
            return password


# --------------------------------------------------------------------------- accounts


def normalize(username: str | None) -> str:
    return (username or "").strip().lower()


def by_username(session: Session, username: str) -> User:
    user = session.scalars(sa.select(User).where(User.username == normalize(username))).first()
    if user is None:
        raise InvalidInput("username", f"no account named {normalize(username)!r}")
    return user


def listing(session: Session) -> list[User]:
    return list(session.scalars(sa.select(User).order_by(User.username)))


def check_new_username(session: Session, username: str) -> str:
    """The username, normalized; refused when malformed or taken."""
    username = normalize(username)
    if not username.isidentifier() or len(username) > 60:
        raise InvalidInput("username", N_("letters, digits and underscores only (60 at most)"))
    if session.scalars(sa.select(User).where(User.username == username)).first():
        raise InvalidInput("username", N_("is already taken"))
    return username


def create_user(session: Session, username: str, role: Role, full_name: str = "",
                password: str | None = None, actor: str = "system",
                must_change: bool = False) -> tuple[User, str]:
    """A new account; returns it with its password (generated when none is given)."""
    username = check_new_username(session, username)
    full_name = " ".join((full_name or "").split())
    if len(full_name) > 200:
        raise InvalidInput("full_name", N_("must have at most 200 characters"))
    if password is None:
        password = generate_password()
    else:
        check_password_policy(username, password)
    user = User(username=username, role=role, full_name=full_name, must_change_password=must_change,
                password_hash=generate_password_hash(password))
    session.add(user)
    audit.record(session, actor, "user.create", user, role=role.value)
    return user, password


def end_sessions(user: User) -> None:
    """Every session of this user stops working at its next request."""
    user.session_version = (user.session_version or 0) + 1


def set_password(session: Session, user: User, password: str | None, actor: str,
                 must_change: bool = False, action: str = "user.password_reset") -> str:
    """A new password (generated when None), ending every session; returns it."""
    if password is None:
        password = generate_password()
    else:
        check_password_policy(user.username, password)
    user.password_hash = generate_password_hash(password)
    user.must_change_password = must_change
    end_sessions(user)
    audit.record(session, actor, action, user, must_change=must_change)
    return password


def change_own_password(session: Session, user: User, current: str, new: str, repeated: str) -> None:
    """The user's own change: the current password first, then the new one twice."""
    if not check_password_hash(user.password_hash, current or ""):
        raise InvalidInput("current_password", N_("is not your current password"))
    if new != repeated:
        raise InvalidInput("repeat", MISMATCH)
    if new == current:
        raise InvalidInput("password", N_("must differ from the current one"))
    set_password(session, user, new, actor=user.username, action="user.password_change")


def _keep_an_it_admin(session: Session, user: User) -> None:
    others = session.scalar(sa.select(sa.func.count(User.id)).where(
        User.role == Role.IT_ADMIN, User.active.is_(True), User.id != user.id))
    if user.role is Role.IT_ADMIN and user.active and not others:
        raise InvalidInput("username", N_("is the last active IT account: add another one first"))


def set_active(session: Session, user: User, active: bool, actor: str) -> None:
    if not active:
        _keep_an_it_admin(session, user)
    if user.active == active:
        return
    user.active = active
    end_sessions(user)
    audit.record(session, actor, "user.enable" if active else "user.disable", user)


def set_role(session: Session, user: User, role: Role, actor: str) -> None:
    if role is not Role.IT_ADMIN:
        _keep_an_it_admin(session, user)
    if user.role is role:
        return
    old, user.role = user.role, role
    end_sessions(user)
    audit.record(session, actor, "user.role", user, old=old.value, new=role.value)


# --------------------------------------------------------------------------- sign-in and its throttle

WINDOW = dt.timedelta(minutes=15)   # failures older than this no longer slow anyone down
KEEP = dt.timedelta(days=7)         # how long failures are kept for IT to see
ACCOUNT_FREE, ADDRESS_FREE = 5, 10  # failures before a wait begins: per name typed, per client address
FIRST_WAIT, MAX_WAIT = 15, 15 * 60  # seconds: the first wait, doubling with each failure after it


@dataclasses.dataclass(frozen=True)
class SignIn:
    user: User | None
    retry_after: int = 0  # seconds to wait before the next try; then the password was not even judged


def _wait(count: int, last: dt.datetime | None, free: int, now: dt.datetime) -> int:
    if count < free or last is None:
        return 0
    delay = min(MAX_WAIT, FIRST_WAIT * 2 ** min(count - free, 12))
    return max(0, math.ceil((last - now).total_seconds() + delay))


def _failures(session: Session, condition, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    row = session.execute(sa.select(sa.func.count(LoginFailure.id), sa.func.max(LoginFailure.at))
                          .where(condition, LoginFailure.at > since)).one()
    return row[0], row[1]


def throttle(session: Session, name: str, address: str, user: User | None, now: dt.datetime) -> int:
    """Seconds before this name may be tried again from this address (0: now).

    Counted on the name typed, whether or not it is an account, so the wait says nothing of which
    names exist. Failures from elsewhere do not slow an account down from the address it last signed
    in from (so nobody can keep its owner out), and a success clears the account's count; the
    address's own count still applies there."""
    waits = []
    if address:
        waits.append(_wait(*_failures(session, LoginFailure.address == address, now - WINDOW), ADDRESS_FREE, now))
    if not (user is not None and address and address == user.last_login_address):
        since = max(now - WINDOW, user.last_login_at) if user is not None and user.last_login_at else now - WINDOW
        waits.append(_wait(*_failures(session, LoginFailure.username == name, since), ACCOUNT_FREE, now))
    return max(waits, default=0)


def authenticate(session: Session, username: str, password: str, address: str = "",
                 now: dt.datetime | None = None) -> SignIn:
    """Sign-in, never saying which part was wrong nor whether the account exists: a password hash
    is checked every time (an unknown name or a wait included), so every answer takes as long.
    The caller commits, failures included."""
    now = now or utcnow()
    name = normalize(username)[:60]
    address = (address or "")[:45]
    user = session.scalars(sa.select(User).where(User.username == name)).first()
    correct = check_password_hash(user.password_hash if user is not None else _DUMMY_HASH, password or "")
    wait = throttle(session, name, address, user, now)
    if wait:
        return SignIn(None, wait)
    if not (correct and user is not None and user.active):
        session.add(LoginFailure(at=now, username=name, address=address))
        session.execute(sa.delete(LoginFailure).where(LoginFailure.at < now - KEEP))
        return SignIn(None)
    user.last_login_at, user.last_login_address = now, address or None
    audit.record(session, user.username, "user.login", user)
    return SignIn(user)


def recent_failures(session: Session, now: dt.datetime | None = None, hours: int = 24, limit: int = 50):
    """Failed sign-ins of the last `hours`, by name and address: rows (username, address, count, last),
    the latest first."""
    now = now or utcnow()
    last = sa.func.max(LoginFailure.at).label("last")
    return session.execute(
        sa.select(LoginFailure.username, LoginFailure.address, sa.func.count(LoginFailure.id).label("count"), last)
        .where(LoginFailure.at > now - dt.timedelta(hours=hours))
        .group_by(LoginFailure.username, LoginFailure.address).order_by(last.desc()).limit(limit)).all()


_DUMMY_HASH = generate_password_hash("not a real password")
