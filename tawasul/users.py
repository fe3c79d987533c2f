"""Staff, governor-office and IT accounts."""
from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tawasul import audit
from tawasul.models import Role, User
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
