"""Staff, governor-office and IT accounts."""
from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tawasul import audit
from tawasul.models import Role, User, utcnow
from tawasul.validation import InvalidInput


def create_user(session: Session, username: str, role: Role, full_name: str = "",
                password: str | None = None, actor: str = "system") -> tuple[User, str]:
    """A new account; returns it with its password (generated when none is given)."""
    username = (username or "").strip().lower()
    if not username.isidentifier():
        raise InvalidInput("username", "letters, digits and underscores only")
    if session.scalars(sa.select(User).where(User.username == username)).first():
        raise InvalidInput("username", "is already taken")
    password = password or secrets.token_urlsafe(12)
    if len(password) < 10:
        raise InvalidInput("password", "must be at least 10 characters")
    user = User(username=username, role=role, full_name=full_name,
                password_hash=generate_password_hash(password))
    session.add(user)
    audit.record(session, actor, "user.create", user, role=role.value)
    return user, password


def check_password(user: User, password: str) -> bool:
    return user.active and check_password_hash(user.password_hash, password)


MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)


def authenticate(session: Session, username: str, password: str, now: dt.datetime | None = None) -> User | None:
    """The user for these credentials, or None (wrong name or password, or locked: never said which).
    Five failures lock the account for fifteen minutes. The caller commits, failures included."""
    now = now or utcnow()
    user = session.scalars(sa.select(User).where(User.username == (username or "").strip().lower())).first()
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")  # same time whether or not the user exists
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    if not check_password(user, password or ""):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins, user.locked_until = 0, now + LOCKOUT
            audit.record(session, user.username, "user.locked", user)
        return None
    user.failed_logins, user.locked_until = 0, None
    audit.record(session, user.username, "user.login", user)
    return user


_DUMMY_HASH = generate_password_hash("not a real password")
