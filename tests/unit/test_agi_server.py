"""The FastAGI server against hostile and broken clients, over real loopback sockets.

Also home of the fake Asterisk (`agi_call`) and the server-in-a-thread harness that
test_agi_route_call.py imports.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agi import variables as v
from agi.call import AgiCall, Decision, HandlerContext, SQLiteReader, mset_value, quote
from agi.routes import ROUTES, route_table
from agi.server import AgiServer
from tests.live import run_async
from tawasul import booking, demo
from tawasul.db import Database, upgrade
from tawasul.models import AppointmentKind
from tawasul.settings import Settings, agi_secret
from tawasul.validation import make_national_id

RIYADH = ZoneInfo("Asia/Riyadh")
SUNDAY = dt.date(2026, 12, 6)
BOOKED_ON = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[2]
PEERS = (ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("127.0.0.2"))  # two Asterisk nodes
SECRET = "agi-test-secret_1"  # what the fake Asterisk's dialplan holds (TAWASUL_AGI_SECRET), and the servers here

pytestmark = pytest.mark.timeout(60)


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=RIYADH).astimezone(dt.UTC)


# --- a fake Asterisk ------------------------------------------------------------------------------

def asterisk_args(line: str) -> list[str]:
    """Split an AGI command line as Asterisk's res_agi parse_args does (quotes, backslash escapes)."""
    args, current, quoted, escaped, started = [], [], False, False, False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped, started = False, True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted, started = not quoted, True
        elif ch in " \t" and not quoted:
            if started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
            started = True
    if started:
        args.append("".join(current))
    return args


def mset_pairs(argument: str) -> list[tuple[str, str]]:
    """MSet's argument as Asterisk splits it: pairs at commas, name and value at the first '='
    (quotes, backslashes and brackets would change that: the server never sends them)."""
    assert not set(argument) & set('"\\()[]{}$'), argument
    return [tuple(pair.split("=", 1)) for pair in argument.split(",")]


def agi_headers(script: str = "route_call", arg1: str | None = "centre-bdr-1", port: int = 4573) -> bytes:
    channel_owner = arg1 or "anonymous"
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:{port}/{script}",
        f"agi_channel: PJSIP/{channel_owner}-00000001",
        "agi_language: ar",
        "agi_type: PJSIP",
        "agi_uniqueid: 1765000000.1",
        "agi_version: 22.5.2",
        "agi_callerid: 1101",
        "agi_calleridname: unknown",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 2100",
        "agi_rdnis: unknown",
        "agi_context: from-centre",
        "agi_extension: 2100",
        "agi_priority: 3",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 139872345601600",
    ]
    if arg1 is not None:
        lines.append(f"agi_arg_1: {arg1}")
    return ("\n".join(lines) + "\n\n").encode()


@dataclasses.dataclass
class CallResult:
    variables: dict[str, str]
    commands: list[str]
    deadlines: list[str] = dataclasses.field(default_factory=list)  # TIMEOUT(absolute) as the server set it

    @property
    def decision(self) -> str | None:
        return self.variables.get(v.TAWASUL_DECISION)

    @property
    def reason(self) -> str | None:
        return self.variables.get(v.TAWASUL_REASON)


def agi_call(port: int, arg1: str | None = "centre-bdr-1", *, script: str = "route_call",
             digits=(), hang_up_at: str | None = None, timeout: float = 15, secret: str | None = SECRET,
             source: str = "127.0.0.1") -> CallResult:
    """One FastAGI request, answered as Asterisk would (from `source`, its dialplan holding `secret`
    as TAWASUL_AGI_SECRET; None: not set). `digits`: what the caller keys at each GET DATA
    ('' = timeout); when they run out, or a command starts with `hang_up_at`, the channel hangs up
    (the socket closes)."""
    keyed = iter(digits)
    variables, commands, deadlines = {}, [], []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(agi_headers(script, arg1, port))
        stream = sock.makefile("rb")
        while True:
            try:
                line = stream.readline()
            except ConnectionResetError:  # closed unanswered (abort)
                break
            if not line:
                break
            command = line.decode().rstrip("\n")
            commands.append(command)
            if hang_up_at and command.startswith(hang_up_at):
                break
            args = asterisk_args(command)
            if args[:2] == ["SET", "VARIABLE"] and args[2] == v.DEADLINE:
                deadlines.append(args[3])
                reply = "200 result=1"
            elif args[:2] == ["SET", "VARIABLE"]:
                variables[args[2]] = args[3]
                reply = "200 result=1"
            elif args == ["ANSWER"]:
                reply = "200 result=0"
            elif args[:3] == ["GET", "VARIABLE", v.TAWASUL_AGI_SECRET]:
                reply = "200 result=0" if secret is None else f"200 result=1 ({secret})"
            elif args[:2] == ["EXEC", "MSet"]:
                variables.update(mset_pairs(args[2]))
                reply = "200 result=0"
            elif args[:2] == ["GET", "DATA"]:
                entry = next(keyed, None)
                if entry is None:
                    break
                reply = f"200 result={entry}" if entry else "200 result= (timeout)"
            else:
                reply = "510 Invalid or unknown command"
            sock.sendall(reply.encode() + b"\n")
    return CallResult(variables, commands, deadlines)


# --- the server in a thread of its own ------------------------------------------------------------

class ServerThread:
    """An AgiServer on 127.0.0.1, in its own thread and event loop, like the real process."""

    def __init__(self, context: HandlerContext, routes=ROUTES, **limits):
        self.context, self.routes, self.limits = context, routes, {"secret": SECRET, **limits}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="agi-server", daemon=True)
        self.thread.start()
        if not self.ready.wait(10) or self.error:
            raise RuntimeError(f"AGI server did not start: {self.error!r}")

    def _run(self):
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - surfaced by __init__
            self.error = exc
            self.ready.set()
        finally:
            self.loop.close()

    async def _main(self):
        self.stop_event = asyncio.Event()
        self.app = AgiServer(self.routes, self.context, **self.limits)
        await self.app.start("127.0.0.1", 0)
        self.port = self.app.port
        self.ready.set()
        await self.stop_event.wait()
        await self.app.stop(grace=1.0)

    @property
    def active(self) -> int:
        return self.app.active

    def close(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        assert not self.thread.is_alive()


def fixed_clock(moment: dt.datetime):
    return lambda: moment


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    """True if the peer closes (EOF or reset) within `timeout`; data received counts as not closed."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def cpu_seconds_while_idle(seconds: float = 0.5) -> float:
    """CPU this process uses while the test thread sleeps: only the server could be busy."""
    start = time.process_time()
    time.sleep(seconds)
    return time.process_time() - start


# --- a module-wide demo database (SQLite) and server, for the hostile-client tests ---------------

@pytest.fixture(scope="module")
def booked(tmp_path_factory):
    settings = dataclasses.replace(Settings(), state_dir=tmp_path_factory.mktemp("agi") / "var", demo=True)
    settings.state_dir.mkdir(parents=True)
    upgrade(settings.db_url)
    database = Database(settings.db_url)
    with database.write() as session:
        demo.seed(session, settings)
        citizen = booking.find_or_register_citizen(session, make_national_id("1", "00000042"),
                                                   "مواطن تجريبي", "0501234567")
        appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=at(SUNDAY, 9),
                                   centre=booking.centre_by_code(session, "BDR"), actor="test", now=BOOKED_ON)
        reference = appointment.reference
    yield settings, database, reference
    database.dispose()


@pytest.fixture(scope="module")
def server(booked):
    settings, database, _reference = booked
    reader = SQLiteReader(database.url)  # as `tawasul agi serve` reads SQLite
    context = HandlerContext(settings=settings, connect=reader.connect, clock=fixed_clock(at(SUNDAY, 9, 5)),
                             db_inline=True, write=database.write)
    running = ServerThread(context, header_timeout=1.0, allowed_peers=PEERS)
    yield running
    running.close()
    reader.dispose()


def assert_normal_call_connects(server, booked):
    result = agi_call(server.port, "centre-bdr-1")
    assert result.decision == v.CONNECT and result.reason == v.OK
    assert booked[2] in result.variables[v.TAWASUL_CALLER_NAME]


def rejections(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agi.server" and "rejected" in r.getMessage()]


# --- tests ----------------------------------------------------------------------------------------

def test_a_normal_request_gets_its_decision(server, booked):
    assert_normal_call_connects(server, booked)


def test_a_client_that_closes_before_the_blank_line_is_dropped_and_nothing_spins(server, booked, caplog):
    caplog.set_level(logging.INFO)
    for partial in (b"", b"agi_network: yes\n", b"agi_network: yes\nagi_network_scr"):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(partial)
            sock.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            assert wait_closed(sock, 0.9)  # before the 1 s header timeout: EOF itself ends it
            assert time.monotonic() - started < 0.9
    for _ in range(50):  # and many that vanish at once
        socket.create_connection(("127.0.0.1", server.port)).close()
    deadline = time.monotonic() + 3
    while server.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active == 0
    assert cpu_seconds_while_idle() < 0.1
    assert len(rejections(caplog)) == 53
    assert_normal_call_connects(server, booked)


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe\x16\x03\x01 not agi at all\n\n",        # binary, e.g. a TLS hello
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",           # a web client
    b"agi_network: yes\nAGI_NETWORK_SCRIPT route_call\n\n",  # not a header line
    b"\n",                                                   # empty header block
    os.urandom(40_000).replace(b"\n", b"x"),                 # one endless line
])
def test_garbage_is_closed_at_once_with_one_log_line(server, booked, caplog, garbage):
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        try:
            sock.sendall(garbage)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert wait_closed(sock, 0.9)
    assert len(rejections(caplog)) == 1
    assert_normal_call_connects(server, booked)


def test_a_5_mb_header_block_is_cut_off_at_the_cap(server, booked, caplog):
    caplog.set_level(logging.INFO)
    line = b"agi_padding: " + b"x" * 1000 + b"\n"
    block = line * (5 * 1024 * 1024 // len(line))
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            while sent < len(block):
                sent += sock.send(block[sent:sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            assert wait_closed(sock, 2)
    assert time.monotonic() - started < 3
    assert sent < len(block)  # the server stopped reading long before the end
    assert len(rejections(caplog)) == 1 and "16384 bytes" in rejections(caplog)[0]
    assert_normal_call_connects(server, booked)


def test_too_many_header_lines_are_refused(server, caplog):
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"agi_x: 1\n" * 300)
        assert wait_closed(sock, 0.9)
    assert "more than 200 header lines" in rejections(caplog)[0]


def test_an_unknown_script_is_closed_without_a_command(server, booked, caplog):
    caplog.set_level(logging.INFO)
    result = agi_call(server.port, script="open_sesame")
    assert result.commands == []
    assert rejections(caplog) == [r for r in rejections(caplog) if "unknown script 'open_sesame'" in r]
    assert len(rejections(caplog)) == 1
    assert agi_call(server.port, script="", arg1=None).commands == []
    assert_normal_call_connects(server, booked)


def test_1000_idle_connections_time_out_while_real_calls_are_answered(server, booked, caplog):
    caplog.set_level(logging.INFO)
    idle = []
    try:
        for n in range(1000):  # from the other node: up to its own cap (1000 connections from one address)
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.2", 0))
            if n % 2:
                sock.sendall(b"agi_network: yes\n")  # half of them start, then stall
            idle.append(sock)
        assert_normal_call_connects(server, booked)
        selector = selectors.DefaultSelector()
        for sock in idle:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        closed, deadline = 0, time.monotonic() + 4
        while closed < len(idle) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(1)
                except ConnectionResetError:
                    data = b""
                assert data == b""
                selector.unregister(key.fileobj)
                closed += 1
        assert closed == 1000
        selector.close()
    finally:
        for sock in idle:
            sock.close()
    assert sum("no complete header block within 1s" in r for r in rejections(caplog)) == 1000
    assert server.active == 0
    assert cpu_seconds_while_idle() < 0.1
    assert_normal_call_connects(server, booked)


def test_the_connection_cap_closes_the_excess_at_once(booked, caplog):
    caplog.set_level(logging.INFO)
    settings, database, _reference = booked
    capped = ServerThread(HandlerContext(settings, database.engine.connect, fixed_clock(at(SUNDAY, 9, 5))),
                          max_connections=5, header_timeout=3.0)
    try:
        held = [socket.create_connection(("127.0.0.1", capped.port)) for _ in range(5)]
        deadline = time.monotonic() + 3
        while capped.active < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", capped.port)) as extra:
            assert wait_closed(extra, 1)
        assert any("5 connections already open" in r for r in rejections(caplog))
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 3
        while capped.active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agi_call(capped.port).decision == v.CONNECT
    finally:
        capped.close()


def test_fastagi_refuses_unlisted_peer(server, booked, caplog):
    """Anyone who reaches the port from an address that is not Asterisk's is closed at once, unanswered:
    not even the secret is asked for, let alone a citizen's name."""
    caplog.set_level(logging.INFO)
    for source in ("127.0.0.3", "127.8.9.10"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=(source, 0)) as sock:
            try:
                sock.sendall(agi_headers())
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert wait_closed(sock, 0.5)
        assert agi_call(server.port, source=source).commands == []
    refused = [r.getMessage() for r in caplog.records if "not an allowed peer" in r.getMessage()]
    assert len(refused) == 4 and all("127.0.0.3" in r or "127.8.9.10" in r for r in refused)
    assert_normal_call_connects(server, booked)


def test_fastagi_requires_shared_secret(server, booked, caplog):
    """Playing Asterisk from Asterisk's own address is not enough: without the dialplan's secret there
    is no decision and no name (the first thing asked is the secret; nothing else follows)."""
    caplog.set_level(logging.INFO)
    for secret in (None, "", "guess", SECRET[:-1], SECRET + "x", SECRET.upper()):
        result = agi_call(server.port, "centre-bdr-1", secret=secret)
        assert result.commands == [f"GET VARIABLE {v.TAWASUL_AGI_SECRET}"], secret
        assert result.variables == {}
        assert not any(booked[2] in command for command in result.commands)
    assert sum("wrong shared secret" in r for r in rejections(caplog)) == 6
    assert_normal_call_connects(server, booked)


def test_one_peer_cannot_take_every_slot(booked, caplog):
    """One Asterisk node (or whatever holds its address) may open at most max_per_peer connections:
    however many it opens, the other node's calls are still decided."""
    caplog.set_level(logging.INFO)
    settings, database, reference = booked
    capped = ServerThread(HandlerContext(settings, database.engine.connect, fixed_clock(at(SUNDAY, 9, 5))),
                          allowed_peers=PEERS, max_connections=8, max_per_peer=4, header_timeout=5.0)
    held = []
    try:
        for _ in range(8):
            held.append(socket.create_connection(("127.0.0.1", capped.port), source_address=("127.0.0.2", 0)))
        deadline = time.monotonic() + 3
        while capped.active < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert capped.active == 4
        assert sum(wait_closed(sock, 0.3) for sock in held) == 4  # the excess is closed at once
        assert any("4 from this address" in r for r in rejections(caplog))
        result = agi_call(capped.port)  # from 127.0.0.1
        assert result.decision == v.CONNECT and reference in result.variables[v.TAWASUL_CALLER_NAME]
    finally:
        for sock in held:
            sock.close()
        capped.close()


@pytest.mark.parametrize("answer", [b"HANGUP\n", b"200 result=-1\n", b"garbage\n", b"\n", b""])
def test_asterisk_hanging_up_mid_command_ends_the_handler_cleanly(server, booked, caplog, answer):
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(agi_headers())
        stream = sock.makefile("rb")
        assert stream.readline() == f"GET VARIABLE {v.TAWASUL_AGI_SECRET}\n".encode()
        sock.sendall(f"200 result=1 ({SECRET})\n".encode())
        assert stream.readline().startswith(b"EXEC MSet ")
        if answer:
            sock.sendall(answer)
        else:
            sock.shutdown(socket.SHUT_WR)
        assert stream.readline() == b""  # nothing more is sent; the server closes
    deadline = time.monotonic() + 3
    while server.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("could not set the decision" in r.getMessage() for r in caplog.records)
    assert_normal_call_connects(server, booked)


def test_after_all_that_the_server_is_idle_and_answers(server, booked):
    assert server.active == 0
    assert cpu_seconds_while_idle() < 0.1
    assert_normal_call_connects(server, booked)
    assert agi_call(server.port, "centre-nowhere-1").variables == {
        v.TAWASUL_REASON: v.UNKNOWN_DEVICE, v.TAWASUL_DECISION: v.DENY}


def test_a_handler_failure_is_the_deny_error_decision(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    nowhere = Database(f"sqlite:///{tmp_path}/no/such/folder/tawasul.db")
    running = ServerThread(HandlerContext(Settings(), nowhere.engine.connect, fixed_clock(at(SUNDAY, 9, 5))))
    try:
        result = agi_call(running.port)
        assert result.variables == {v.TAWASUL_REASON: v.ERROR, v.TAWASUL_DECISION: v.DENY}
        assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)
    finally:
        running.close()
        nowhere.dispose()


def test_a_handler_that_returns_no_decision_is_denied_too(booked):
    async def confused(call, ctx):
        return "connect"

    async def exploding(call, ctx):
        raise RuntimeError("boom")

    settings, database, _reference = booked
    running = ServerThread(HandlerContext(settings, database.engine.connect), routes=route_table(confused, exploding))
    try:
        for script in ("confused", "exploding"):
            assert agi_call(running.port, script=script).variables == {
                v.TAWASUL_REASON: v.ERROR, v.TAWASUL_DECISION: v.DENY}
    finally:
        running.close()


def test_the_route_table_is_explicit_and_refuses_duplicates_and_plain_functions():
    assert dict(ROUTES) == {"route_call": ROUTES["route_call"]}
    assert ROUTES["route_call"].__module__ == "agi.route_call"

    async def route_call(call, ctx):
        return Decision.deny(v.ERROR)

    with pytest.raises(ValueError, match="registered twice"):
        route_table(ROUTES["route_call"], route_call)

    def plain(call, ctx):
        return Decision.deny(v.ERROR)

    with pytest.raises(TypeError, match="async def"):
        route_table(plain)


def test_values_are_quoted_the_way_asterisk_reads_them():
    for value in ('مواطن "أبو علي" A-1234', "back\\slash", "new\nline", ""):
        expected = value.replace("\n", " ")
        assert asterisk_args(f"SET VARIABLE X {quote(value)}") == ["SET", "VARIABLE", "X", expected]
    assert Decision(v.CONNECT, v.OK, 7, "n r", 300).variables() == [
        (v.TAWASUL_APPOINTMENT, "7"), (v.TAWASUL_CALLER_NAME, "n r"), (v.TAWASUL_SLOT_SECONDS, "300"),
        (v.TAWASUL_REASON, v.OK), (v.TAWASUL_DECISION, v.CONNECT)]
    with pytest.raises(ValueError):
        Decision("maybe", v.OK)


def test_the_click_group_has_serve_with_host_and_port(settings):
    from agi.cli import agi

    result = CliRunner().invoke(agi, ["serve", "--help"], obj=settings)
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output


def test_python_m_agi_serves_and_stops_cleanly_on_sigterm(booked, tmp_path):
    settings, _database, _reference = booked
    env = {**os.environ, "TAWASUL_STATE_DIR": str(settings.state_dir), "TAWASUL_DEMO": "1",
           "TAWASUL_CONFIG": str(tmp_path / "none.toml")}
    process = subprocess.Popen([sys.executable, "-m", "agi", "--host", "127.0.0.1", "--port", "0"],
                               cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in process.stderr:
            if "listening on" in line:
                port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
                break
        assert port, "the server did not report its port"
        # the real clock: an unknown device is denied whatever the time
        secret = agi_secret(settings)  # made in the state folder by the server on its first start
        assert agi_call(port, "centre-nowhere-1", secret=secret).decision == v.DENY
        assert agi_call(port, "centre-bdr-1", secret=secret).decision in (v.CONNECT, v.WAIT, v.DENY)
        assert agi_call(port, "centre-bdr-1").variables == {}  # any other secret: no decision
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert "stopping" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_caller_name_can_never_set_another_variable():
    """The decision goes in one EXEC MSet: whatever a citizen's name holds, Asterisk sets exactly
    the decision's variables (no comma, quote, backslash or bracket reaches MSet)."""
    sent = []

    class Request:
        headers = {}

        async def send_command(self, line):
            sent.append(line)
            return {"result": ("0", "")}

    hostile = 'x",TAWASUL_DECISION=connect,(y)\\ ${SHELL(id)} [z]'
    decision = Decision(v.DENY, v.BAD_CODE, 7, hostile, 60)
    run_async(AgiCall(Request()).set_variables(decision.variables()))
    [line] = sent
    args = asterisk_args(line)
    assert args[:2] == ["EXEC", "MSet"] and len(args) == 3
    pairs = mset_pairs(args[2])
    assert [name for name, _value in pairs] == [name for name, _value in decision.variables()]
    assert dict(pairs)[v.TAWASUL_DECISION] == v.DENY
    assert "مواطن" in mset_value("مواطن A-1") and mset_value("too_early") == "too_early"
