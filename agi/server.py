"""The FastAGI server: panoramisk 1.4's Application, hardened.

panoramisk's own `Application.handler` reads headers in a loop that never ends on EOF (it spins
without yielding, blocking the event loop), has no limits, and `parse_agi_result('')` raises.
This subclass replaces the handler:

- only Asterisk may ask: a connection from an address outside `allowed_peers` (the
  agi_allowed_peers setting) is closed at once, unanswered; then, before any handler runs, the
  server reads the dialplan's global TAWASUL_AGI_SECRET (GET VARIABLE) and closes the connection,
  with no decision, unless it is the shared secret (compared in constant time);
- at most MAX_CONNECTIONS connections at once, and MAX_CONNECTIONS_PER_PEER from any one
  address (one flooding peer cannot take every slot); more are closed at once;
- the whole header block must arrive within HEADER_TIMEOUT seconds, in at most
  MAX_HEADER_BYTES bytes and MAX_HEADER_LINES lines, each line `agi_<name>: <value>`;
- EOF, garbage, an oversize block, a timeout or an unknown script name: one log line, close
  (the dialplan treats no decision as deny);
- command replies are read with a deadline; EOF, `HANGUP` or an unparsable reply end the
  handler cleanly (AgiHangup), never an exception loop;
- a handler's exception becomes the decision deny/error; a handler's whole run is capped.
Idle, the server uses no CPU: every wait is an await on a socket or a timer.
"""
from __future__ import annotations

import asyncio
import gc
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Mapping

from panoramisk.fast_agi import Application, Request
from panoramisk.utils import parse_agi_result

from agi import metrics, variables as v
from agi.call import AgiCall, AgiCommandFailed, AgiHangup, Decision, HandlerContext

log = logging.getLogger("agi.server")

HEADER_TIMEOUT = 5.0          # seconds for the whole header block
MAX_HEADER_BYTES = 16 * 1024  # whole header block (and any one line)
MAX_HEADER_LINES = 200        # Asterisk sends ~20 agi_* lines plus one per AGI() argument
MAX_CONNECTIONS = 2000        # concurrent connections
MAX_CONNECTIONS_PER_PEER = 1000  # concurrent connections from one address
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
COMMAND_TIMEOUT = 60.0        # seconds to wait for Asterisk's reply to one command
HANDLER_TIMEOUT = 120.0       # seconds for one handler's whole run (GET DATA tries included)

_HEADER = re.compile(r"(agi_[a-z0-9_]{1,40}): ?(.*)")


class Rejected(Exception):
    """A connection that is not a usable AGI request (the message is the log line)."""


class GuardedRequest(Request):
    """panoramisk's Request, reading replies with a deadline and refusing empty or bad lines."""

    async def _read_result(self):
        try:
            async with asyncio.timeout(self.app.command_timeout):  # wait_for would wrap a task around each read
                line = await self.reader.readline()
        except TimeoutError:
            raise AgiHangup(f"no reply within {self.app.command_timeout:g}s") from None
        except (ValueError, asyncio.LimitOverrunError):
            raise AgiHangup("reply line too long") from None
        except (ConnectionError, OSError) as exc:
            raise AgiHangup(f"connection lost: {exc}") from None
        if not line.endswith(b"\n"):
            raise AgiHangup("connection closed")
        text = line.decode(self.encoding, "replace").rstrip("\r\n")
        if not text:
            raise AgiHangup("empty reply")
        try:
            return parse_agi_result(text)
        except (ValueError, TypeError):
            raise AgiHangup(f"unparsable reply {text[:60]!r}") from None


class AgiServer(Application):
    def __init__(self, routes: Mapping, context: HandlerContext, *, secret: str, allowed_peers=LOOPBACK,
                 max_per_peer: int = MAX_CONNECTIONS_PER_PEER,
                 header_timeout: float = HEADER_TIMEOUT, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_header_lines: int = MAX_HEADER_LINES, max_connections: int = MAX_CONNECTIONS,
                 command_timeout: float = COMMAND_TIMEOUT, handler_timeout: float = HANDLER_TIMEOUT):
        super().__init__(loop=asyncio.get_running_loop())
        self.context = context
        self.secret = secret.encode()
        self.allowed_peers = tuple(allowed_peers)
        self.max_per_peer = max_per_peer
        self.per_peer: dict = {}  # address -> connections open
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.max_header_lines = max_header_lines
        self.max_connections = max_connections
        self.command_timeout = command_timeout
        self.handler_timeout = handler_timeout
        self.active = 0
        self.tasks: set[asyncio.Task] = set()
        self.server: asyncio.Server | None = None
        for name, handler in routes.items():
            self.add_route(name, handler)  # panoramisk: a duplicate raises ValueError

    def add_route(self, path, endpoint):
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"AGI route {path!r}: the handler must be an async def function")
        super().add_route(path, endpoint)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> asyncio.Server:
        self.server = await asyncio.start_server(
            self.handler, host, port, limit=self.max_header_bytes, backlog=4096, reuse_address=True)
        return self.server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; let calls in progress finish for `grace` seconds, then cancel them."""
        if self.server is not None:
            self.server.close()
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        if self.server is not None:
            await self.server.wait_closed()

    # --- one connection ------------------------------------------------------------------------

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = _address(writer)
        if address is None or not any(address in network for network in self.allowed_peers):
            log.warning("agi: %s refused: not an allowed peer (agi_allowed_peers)", _peer(writer))
            metrics.REJECTED.inc()
            writer.transport.abort()
            return
        from_peer = self.per_peer.get(address, 0)
        if self.active >= self.max_connections or from_peer >= self.max_per_peer:
            log.warning("agi: %s rejected: %d connections already open, %d from this address",
                        _peer(writer), self.active, from_peer)
            metrics.REJECTED.inc()
            writer.transport.abort()
            return
        self.active += 1
        self.per_peer[address] = from_peer + 1
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            try:
                async with asyncio.timeout(self.header_timeout):
                    headers = await self.read_headers(reader)
            except TimeoutError:
                raise Rejected(f"no complete header block within {self.header_timeout:g}s") from None
            script = headers.get("agi_network_script", "")
            endpoint = self._route.get(script)
            if endpoint is None:
                raise Rejected(f"unknown script {script[:40]!r}")
            call = AgiCall(GuardedRequest(
                app=self, headers=headers, reader=reader, writer=writer, encoding=self.default_encoding))
            await self.authenticate(call)
            await self.run(script, endpoint, call)
        except Rejected as exc:
            log.warning("agi: %s rejected: %s", _peer(writer), exc)
            metrics.REJECTED.inc()
        finally:
            self.active -= 1
            left = self.per_peer.pop(address) - 1
            if left:
                self.per_peer[address] = left
            self.tasks.discard(task)
            _close(writer)

    async def authenticate(self, call: AgiCall) -> None:
        """The dialplan's TAWASUL_AGI_SECRET must be the shared secret; else Rejected (no decision is sent:
        the dialplan denies). Bounded like the headers: a peer that stalls here holds its slot no longer."""
        try:
            async with asyncio.timeout(self.header_timeout):
                result = await call.command(f"GET VARIABLE {v.TAWASUL_AGI_SECRET}")
        except TimeoutError:
            raise Rejected(f"no answer to the secret within {self.header_timeout:g}s") from None
        except (AgiHangup, AgiCommandFailed) as exc:
            raise Rejected(f"no secret: {exc}") from None
        given = result.get("result", ("", ""))
        value = given[1] if given[0] == "1" and len(given) > 1 else ""
        if not (self.secret and hmac.compare_digest(value.encode(), self.secret)):
            raise Rejected("wrong shared secret (TAWASUL_AGI_SECRET)")

    async def read_headers(self, reader: asyncio.StreamReader) -> dict[str, str]:
        """Header lines up to the blank line. Raises Rejected on EOF, garbage or excess."""
        headers: dict[str, str] = {}
        total = lines = 0
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raise Rejected(f"header line over {self.max_header_bytes} bytes") from None
            except (ConnectionError, OSError) as exc:
                raise Rejected(f"connection lost before the headers ended: {exc}") from None
            if not line.endswith(b"\n"):
                raise Rejected("connection closed before the headers ended" if not line
                               else "connection closed in the middle of a header line")
            total += len(line)
            lines += 1
            if total > self.max_header_bytes:
                raise Rejected(f"header block over {self.max_header_bytes} bytes")
            if lines > self.max_header_lines:
                raise Rejected(f"more than {self.max_header_lines} header lines")
            line = line.rstrip(b"\r\n")
            if not line:
                if not headers:
                    raise Rejected("empty header block")
                return headers
            match = _HEADER.fullmatch(line.decode(self.default_encoding, "replace"))
            if match is None:
                raise Rejected(f"not an AGI header line: {line[:40]!r}")
            name, value = match.groups()
            headers[name] = value

    async def run(self, script: str, endpoint, call: AgiCall) -> None:
        """Run one handler to a decision, and hand the decision to the dialplan."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.handler_timeout):
                decision = await endpoint(call, self.context)
            if not isinstance(decision, Decision):
                raise TypeError(f"{script} returned {decision!r}, not a Decision")
        except AgiHangup as exc:
            log.info("agi: %s %s: channel gone before a decision (%s)", script, _who(call), exc)
            metrics.decided(script, "none", "hangup", time.monotonic() - started)
            return
        except AgiCommandFailed as exc:
            log.error("agi: %s %s: Asterisk refused a command: %s", script, _who(call), exc)
            decision = Decision.deny(v.ERROR)
        except Exception:  # wazo-agid's agi_fail: any failure is the deny decision
            log.exception("agi: %s %s failed", script, _who(call))
            decision = Decision.deny(v.ERROR)
        try:
            await call.set_variables(decision.variables())
        except (AgiHangup, AgiCommandFailed) as exc:
            log.info("agi: %s %s: could not set the decision (%s)", script, _who(call), exc)
            metrics.decided(script, "none", "hangup", time.monotonic() - started)
            return
        metrics.decided(script, decision.decision, decision.reason, time.monotonic() - started)
        log.info("agi: %s %s -> %s %s%s (%.0f ms)", script, _who(call), decision.decision, decision.reason,
                 f" appointment={decision.appointment_id}" if decision.appointment_id else "",
                 (time.monotonic() - started) * 1000)


def _address(writer) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    peer = writer.get_extra_info("peername")
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except (TypeError, IndexError, ValueError):
        return None  # not an IP socket
    return address.ipv4_mapped or address if address.version == 6 else address


def _peer(writer) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _who(call: AgiCall) -> str:
    return f"channel={call.headers.get('agi_channel', '?')[:80]} arg1={call.arg(1)[:40]!r}"


def _close(writer) -> None:
    try:
        if writer.transport.get_write_buffer_size():
            writer.close()  # flush what is queued, then close
        else:
            writer.transport.abort()  # nothing left to say; also drops unread input without waiting
    except (OSError, RuntimeError) as exc:  # pragma: no cover - closing must never raise
        log.debug("agi: error while closing: %s", exc)


async def serve(routes: Mapping, context: HandlerContext, host: str, port: int,
                stop: asyncio.Event, **limits) -> None:
    """Run until `stop` is set."""
    app = AgiServer(routes, context, **limits)
    await app.start(host, port)
    # What is loaded by now (modules, SQLAlchemy's mappers) lives as long as the process. Frozen, it is out
    # of the collector's reach: a full collection, which stalls every call in flight, takes ~0.5 ms, not ~45.
    gc.collect()
    gc.freeze()
    log.info("agi: FastAGI server listening on %s:%d (%s)", host, app.port, ", ".join(sorted(routes)))
    try:
        await stop.wait()
    finally:
        log.info("agi: stopping")
        await app.stop()
