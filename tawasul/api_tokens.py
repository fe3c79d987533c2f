"""Bearer tokens for integrations using the JSON API. A token is `tws_` and 43 URL-safe characters
(32 random bytes); only its SHA-256 is stored, so the token is shown once, when created. Each token
acts with one role, checked on every API route like a signed-in user's."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import ApiToken, Role, utcnow
from tawasul.validation import InvalidInput

PREFIX = "tws_"
NAME_MAX = 40
# last_used_at is written at most this often per token (not a write on every request).
TOUCH_EVERY = dt.timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create(session: Session, name: str, role: Role, actor: str = "cli") -> tuple[ApiToken, str]:
    """A new token for the integration `name`; returns the row and the token (shown once)."""
    name = " ".join((name or "").split())
    if not name:
        raise InvalidInput("name", "is required")
    if len(name) > NAME_MAX or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput("name", f"letters, digits, '-', '_' and '.' only ({NAME_MAX} characters at most)")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=digest(token))
    session.add(row)
    audit.record(session, actor, "api_token.create", row, role=role.value)
    return row, token


# Built once, and columns rather than an ORM object: this runs for every API request.
_BY_DIGEST = sa.select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.revoked, ApiToken.last_used_at).where(
    ApiToken.token_hash == sa.bindparam("digest"))


def authenticate(db: Session | sa.Connection, token: str, now: dt.datetime | None = None) -> sa.Row | None:
    """The active token for this bearer token (id, name, role, revoked, last_used_at), or None
    (unknown, malformed or revoked)."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = db.execute(_BY_DIGEST, {"digest": digest(token)}).first()
    if row is None or row.revoked:
        return None
    return row


def touch(session: Session, row: ApiToken | sa.Row, now: dt.datetime | None = None) -> bool:
    """Stamp `last_used_at` (at most once per TOUCH_EVERY); True when a write was made."""
    now = now or utcnow()
    if row.last_used_at is not None and now - row.last_used_at < TOUCH_EVERY:
        return False
    session.execute(sa.update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return True


def listing(session: Session) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).order_by(ApiToken.id)))


def revoke(session: Session, which: str, actor: str = "cli") -> list[ApiToken]:
    """Revoke the token with this id, or every active token with this name. Refuses when none match."""
    which = (which or "").strip()
    query = sa.select(ApiToken).where(ApiToken.revoked.is_(False))
    query = query.where(ApiToken.id == int(which)) if which.isdigit() else query.where(ApiToken.name == which)
    rows = list(session.scalars(query))
    if not rows:
        raise InvalidInput("token", f"no active token with id or name {which!r}")
    for row in rows:
        row.revoked = True
        audit.record(session, actor, "api_token.revoke", row)
    return rows
