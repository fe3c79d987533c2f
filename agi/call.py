"""What an AGI handler is given and what it gives back.

A handler is `async def name(call: AgiCall, ctx: HandlerContext) -> Decision`. It reads the
request through `call` (headers, arguments, GET DATA), does its database work on a connection
from `ctx.connect` through `ctx.in_db`, and returns a Decision; the server sets the channel variables.
Tests can pass fakes for both arguments.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from agi import variables as v
from tawasul.settings import Settings


class AgiHangup(Exception):
    """The channel hung up, or the connection to Asterisk ended, while a command was running."""


class AgiCommandFailed(Exception):
    """Asterisk answered a command with an error (invalid command, usage error, ...)."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class HandlerContext:
    settings: Settings
    connect: Callable[[], AbstractContextManager[sa.Connection]]  # e.g. Engine.connect (reads only)
    clock: Callable[[], dt.datetime] = utc_now                 # aware UTC
    # Run database work on the event loop itself: only for a local SQLite file, whose reads (WAL)
    # never wait on anything and take a fraction of a millisecond, less than handing them to a thread
    # costs under load. A database over the network (it may hang) always gets a worker thread.
    db_inline: bool = False
    # A write transaction (tawasul.db.Database.write): the few writes a decision makes (a wrong booking code
    # counted on its appointment). Always in a worker thread: a write may wait its turn.
    write: Callable[[], AbstractContextManager[Session]] | None = None

    async def in_db(self, work: Callable, *args):
        return work(*args) if self.db_inline else await asyncio.to_thread(work, *args)

    async def in_write(self, work: Callable, *args):
        """`work(session, *args)` in a write transaction, in a worker thread."""
        if self.write is None:
            raise RuntimeError("this handler context cannot write")

        def run():
            with self.write() as session:
                return work(session, *args)
        return await asyncio.to_thread(run)


class SQLiteReader:
    """`connect` for database work on the event loop (a local SQLite file, HandlerContext.db_inline): one
    connection, opened on first use and kept, read-only and in autocommit, so each statement reads the newest
    committed state. The app's sessions would check a connection out of the pool and BEGIN and ROLLBACK
    around every decision, together more than the decision's one query costs."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(self.engine, "connect", _sqlite_autocommit_read_only)
        self.connection: sa.Connection | None = None

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        if self.connection is None:
            self.connection = self.engine.connect()
        try:
            yield self.connection
        except Exception:
            self.dispose()  # the next call starts from a new connection
            raise
        self.connection.rollback()  # ends SQLAlchemy's transaction; SQLite's own ended with the statement

    def dispose(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self.engine.dispose()


def _sqlite_autocommit_read_only(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # no BEGIN: each statement is its own read transaction
    dbapi_connection.execute("PRAGMA query_only = ON")  # the AGI server never writes


@dataclass(frozen=True)
class Decision:
    decision: str
    reason: str
    appointment_id: int | None = None
    caller_name: str = ""
    slot_seconds: int | None = None

    def __post_init__(self):
        if self.decision not in v.DECISIONS:
            raise ValueError(f"unknown decision {self.decision!r}")

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(v.DENY, reason)

    def variables(self) -> list[tuple[str, str]]:
        """The channel variables to set, in order. The decision comes last, so a call that drops
        half-way never leaves a `connect` without its details."""
        out = []
        if self.appointment_id is not None:
            out.append((v.TAWASUL_APPOINTMENT, str(self.appointment_id)))
        if self.caller_name:
            out.append((v.TAWASUL_CALLER_NAME, self.caller_name))
        if self.slot_seconds is not None:
            out.append((v.TAWASUL_SLOT_SECONDS, str(self.slot_seconds)))
        out.append((v.TAWASUL_REASON, self.reason))
        out.append((v.TAWASUL_DECISION, self.decision))
        return out


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# MSet splits its argument at commas (outside quotes and brackets) and honours backslashes: a value
# keeps only letters (any script), digits, spaces and - . ' so that it can never start another variable.
_MSET_UNSAFE = re.compile(r"[^\w .'-]")


def mset_value(value: str) -> str:
    return _MSET_UNSAFE.sub(" ", str(value))[:200]


def quote(value: str, max_length: int = 200) -> str:
    """One AGI command argument: control characters dropped, quotes and backslashes escaped
    (Asterisk's res_agi argument parser honours backslash escapes inside double quotes)."""
    value = _CONTROL.sub(" ", str(value))[:max_length]
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class AgiCall:
    """One FastAGI request: its headers, and commands sent through panoramisk's Request."""

    request: object  # panoramisk.fast_agi.Request (or a fake with `headers` and `send_command`)
    headers: Mapping[str, str] = field(init=False)

    def __post_init__(self):
        self.headers = self.request.headers

    @property
    def script(self) -> str:
        return self.headers.get("agi_network_script", "")

    def arg(self, n: int, default: str = "") -> str:
        """agi_arg_n (1-based): the n-th argument the dialplan passed to AGI()."""
        return self.headers.get(f"agi_arg_{n}", default)

    async def command(self, line: str) -> dict:
        if "\n" in line or "\r" in line:
            raise ValueError("an AGI command is one line")
        try:
            result = await self.request.send_command(line)
        except (ConnectionError, OSError) as exc:
            raise AgiHangup(f"connection lost: {exc}") from None
        error = result.get("error")
        if error in ("AGIResultHangup", "AGIAppError"):
            raise AgiHangup(result.get("msg", "") or error)
        if error:
            raise AgiCommandFailed(f"{line.split(' ', 2)[:2]}: {error} {result.get('msg', '')}".strip())
        return result

    async def set_variables(self, pairs: list[tuple[str, str]]) -> None:
        """Set them all, in order, in one round trip (EXEC MSet) rather than one per variable."""
        payload = ",".join(f"{name}={mset_value(value)}" for name, value in pairs)
        result = await self.command(f"EXEC MSet {quote(payload, max_length=1000)}")
        if result.get("result", ("",))[0] not in ("0", ""):  # -2: no such application
            raise AgiCommandFailed(f"EXEC MSet: result {result.get('result')}")

    async def answer(self) -> None:
        await self.command("ANSWER")

    async def set_deadline(self, seconds: int) -> None:
        """Move the dialplan's bound on this exchange (TIMEOUT(absolute)) to `seconds` from now."""
        await self.command(f"SET VARIABLE {v.DEADLINE} {int(seconds)}")

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        """Play `prompt` and collect up to `max_digits` DTMF digits; '' on timeout."""
        result = await self.command(f"GET DATA {prompt} {int(timeout_ms)} {int(max_digits)}")
        digits, _data = result.get("result", ("", ""))
        return digits if digits.isdigit() else ""
