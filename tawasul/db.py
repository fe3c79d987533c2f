"""Database engine and sessions. SQLite (WAL) by default; any SQLAlchemy URL through settings."""
from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


class UTCDateTime(sa.types.TypeDecorator):
    """Stores naive UTC, hands back aware UTC: the same on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


def make_engine(url: str, pool_size: int | None = None, **kwargs) -> sa.Engine:
    """`pool_size`: connections kept open for reuse (SQLAlchemy's default is 5, and a connection beyond
    them is closed when given back: under more concurrent requests than that, each one beyond opened a
    new connection, on PostgreSQL a new server process). An in-memory SQLite database has no such pool."""
    if pool_size and (sqlite_file(url) or not url.startswith("sqlite")):
        kwargs.update(pool_size=pool_size)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    engine = sa.create_engine(url, pool_use_lifo=True, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection idle longer than this is pinged before use (a restarted server has closed it).
# SQLAlchemy's pool_pre_ping pings on every checkout: a round trip for each, two a web request. A
# connection in steady use is not pinged; if the server restarts under it, its next statement fails,
# and that failure makes the pool drop every connection it holds, as a failed ping would.
PING_WHEN_IDLE = 1.0  # seconds


def _ping_when_idle(engine: sa.Engine) -> None:
    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection, record):
        record.info["tawasul.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("tawasul.idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= PING_WHEN_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise sa.exc.InvalidatePoolError(f"a pooled connection failed its ping: {error}") from error


def _sqlite_pragmas(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Take transaction control from the driver so a writer can BEGIN IMMEDIATE:
        # a deferred transaction that reads and then writes fails at once under WAL
        # when another writer got there first, instead of waiting its turn.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        immediate = connection.get_execution_options().get("sqlite_immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class WriterTurns:
    """One write transaction at a time among the threads and processes sharing an SQLite file, in
    the order they come. SQLite's own wait for its write lock (busy_timeout) sleeps in steps of up
    to 100 ms between tries, which the web showed as 0.3-0.5 s bookings whenever two workers wrote
    at once; a lock on a file beside the database lets the next writer in within milliseconds."""

    TIMEOUT = 30.0  # as busy_timeout: then the write fails instead of hanging

    def __init__(self, path: str):
        self.path, self.in_process = path, threading.Lock()
        self.fd, self.pid = None, None

    @contextmanager
    def turn(self):
        deadline = time.monotonic() + self.TIMEOUT
        if not self.in_process.acquire(timeout=self.TIMEOUT):
            raise self._busy()
        try:
            if self.pid != os.getpid():  # a forked child needs a lock of its own
                self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            pause = 0.0005
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise self._busy() from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.004)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.in_process.release()

    def _busy(self) -> TimeoutError:
        return TimeoutError(f"the database is busy: another write has not finished in {self.TIMEOUT:g} s")


def sqlite_file(url: str) -> str | None:
    """The database file of an SQLite URL; None for an in-memory database or another kind of database."""
    database = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    return database if database and database != ":memory:" else None


def _writer_turns(url: str) -> WriterTurns | None:
    database = sqlite_file(url)
    return WriterTurns(f"{database}-writers.lock") if database else None


class Database:
    """One engine and its session factories: `read()` for queries, `write()` for changes."""

    def __init__(self, url: str, **engine_kwargs):  # engine_kwargs: make_engine's
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        writer_bind = self.engine.execution_options(sqlite_immediate=True)
        self._writer = sessionmaker(writer_bind, expire_on_commit=False)
        self._turns = _writer_turns(url)
        # PostgreSQL: no BEGIN and ROLLBACK around a lone read (two round trips). SQLite keeps its
        # transactions: resetting the driver's isolation level would undo _sqlite_pragmas' transaction control.
        self._lone = self.engine if url.startswith("sqlite") else self.engine.execution_options(
            isolation_level="AUTOCOMMIT")

    @contextmanager
    def read(self) -> Session:
        with self._reader() as session:
            yield session

    @contextmanager
    def read_one(self) -> sa.Connection:
        """A connection for one statement that reads (a consistent view of several needs `read()`)."""
        with self._lone.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Session:
        """A transaction committed on success, rolled back on any error."""
        with self._turns.turn() if self._turns else nullcontext(), self._writer() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (Alembic)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")
