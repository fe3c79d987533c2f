"""Rate limits: counters shared by every web worker, and whom a limit counts.

Flask-Limiter's memory store is per process, so with N gunicorn workers a client got N times its
limit. The counters live in a small SQL table instead (`SqlStorage`, registered with the `limits`
library as `tawasul-sql://`): by default an SQLite file in the state folder, shared by the workers
of one host; the setting `rate_limits_url` can point every web host at one PostgreSQL database.

A limit counts a client by address, an IPv6 client by its /64 (one subscriber's whole prefix, so
rotating addresses inside it gains nothing), and public tracking also counts each reference number
whoever asks (`reference_key`), so guessing one reference's identity from many addresses is slow too.
"""
from __future__ import annotations

import ipaddress
import random
import time

import sqlalchemy as sa
from flask import request
from flask_limiter.util import get_remote_address
from limits.storage import Storage

from tawasul.db import sqlite_file
from tawasul.references import normalise

SCHEME = "tawasul-sql"
_metadata = sa.MetaData()
counters = sa.Table(
    "rate_limit", _metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


def storage_url(settings) -> str:
    return settings.rate_limits_url or f"sqlite:///{settings.state_dir.resolve() / 'ratelimits.db'}"


class SqlStorage(Storage):
    """A fixed-window counter store on SQLAlchemy (SQLite or PostgreSQL)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, url: str = "", **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        sqlite = sqlite_file(url) is not None
        self.engine = sa.create_engine(url, connect_args={"timeout": 10} if sqlite else {})
        if sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        _metadata.create_all(self.engine)

    @property
    def base_exceptions(self):
        return sa.exc.SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        for attempt in range(3):
            try:
                return self._incr(key, expiry, amount)
            except sa.exc.IntegrityError:  # another worker started this key's window first
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _incr(self, key: str, expiry: int, amount: int) -> int:
        now = time.time()
        with self.engine.begin() as connection:
            count = connection.execute(
                counters.update().where(counters.c.key == key, counters.c.expires_at > now)
                .values(count=counters.c.count + amount).returning(counters.c.count)).scalar()
            if count is not None:
                return count
            connection.execute(counters.delete().where(counters.c.key == key))
            connection.execute(counters.insert().values(key=key, count=amount, expires_at=now + expiry))
            if random.random() < 0.01:  # now and then, forget the windows that are over
                connection.execute(counters.delete().where(counters.c.expires_at <= now))
            return amount

    def get(self, key: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(counters.c.count).where(
                counters.c.key == key, counters.c.expires_at > time.time())).scalar() or 0

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(counters.c.expires_at).where(
                counters.c.key == key)).scalar() or time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.select(1))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            return connection.execute(counters.delete()).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(counters.delete().where(counters.c.key == key))


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # counters may lose a moment's hits in a crash, no more
    cursor.close()


def client_key() -> str:
    """The client's address; for IPv6, its /64."""
    address = get_remote_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def reference_key() -> str:
    """The reference number a tracking request asks about (form or JSON), whoever asks."""
    data = request.get_json(silent=True) if request.is_json else request.form
    reference = data.get("reference") if isinstance(data, dict) else None
    return "reference:" + ((normalise(reference) if isinstance(reference, str) else "") or "-")
