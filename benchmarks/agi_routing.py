"""Routing under load: SIPp calls through the real FastAGI routing path, beside a static dialplan
route (the floor) and a process-per-call AGI doing the same lookup (the classic-AGI baseline),
against one Asterisk instance and one realistic database, all in one run.

What runs:
- a database of 50 centres, each with a video phone; 5,000 appointments over a month around
  now (every 20-minute video slot of the month booked, round-robin over the centres, past ones
  completed; the rest in-person sessions); the governor's schedule every day, all day. So at
  any moment one or two centres have an appointment due, some have one later today (too early)
  and the rest have none;
- a throwaway Asterisk instance (free ports, settings.load_test on: the `[load]` endpoint for
  127.0.0.2 and the `load-test` context, see asterisk_conf/);
- the real FastAGI server, `tawasul agi serve`, as a child process with the instance's settings;
- the baseline: a forking FastAGI front on another port that starts one Python process per
  connection, with the connection as its stdin/stdout, which runs route_call's lookup and
  answers (see perproc_front / perproc_child). That is what classic AGI (`AGI(script.py)`) costs:
  an interpreter start, the imports and a database connection per call. Asterisk runs in its
  own root filesystem without the app, so its own fork-exec AGI cannot reach the app's
  code; a fork-per-connection front on the host reproduces the same per-call cost;
- a reference for the FastAGI exchange itself: a bare FastAGI server (bare_front) that reads the
  headers and answers one fixed EXEC MSet decision, with no lookup and no logging. Routing cannot
  be cheaper than this; what routing adds over it is what this project's code costs, and what the
  bare exchange adds over the static route is Asterisk's AGI (connect, headers, command, close);
- SIPp from 127.0.0.2 (benchmarks/sipp/uac_setup.xml), calls spread over the 50 centres:
  `static`, `routed-<code>` (AGI route_call, impersonating that centre's phone) and
  `perproc-<code>` (the process-per-call baseline, or the bare server: the extension's AGI
  address is a dialplan global the benchmark points at one or the other).

What is measured (SIPp's own trace files):
- call set-up time = SIPp's response time 1: INVITE sent -> 200 OK received. Asterisk answers
  only after the dialplan ran, so for a routed call it holds the whole FastAGI exchange
  (connect, headers, lookup, one EXEC MSet with the decision). SIPp records it in whole milliseconds;
- what routing adds to the set-up time: from rounds of static, bare and routed calls in turn (3 x
  2,000 calls each at 200/s), their set-up times pooled per route, so that a slow phase of a shared
  machine (steal time moves these figures 2-10x within minutes) falls on all three alike; the
  6,000-call runs' own figures are printed beside them;
- calls/s held = successful calls over the span between the first and the last 200 OK; a rate
  is "held" when under 0.1% of the calls fail and at least 90% of the offered rate completes;
- the highest rate held, from a short ramp of steps (static, routed, bare: 200/s for 6,000 calls,
  then steps of 10 s; process-per-call: steps of 10 s from 0.25/s); a ramp stops at its first
  step not held, then two more steps bisect between the last rate held and that one (to 25 calls/s;
  0.5/s for process-per-call), each on a freshly started Asterisk;
- the FastAGI server's RSS (VmRSS from /proc) with 1,000 concurrent AGI sessions: 1,000
  connections that send a request for a centre that asks for its booking code, get the GET DATA
  command and never answer it, so each session stays open inside route_call.

`python -m benchmarks agi_routing --quick` (or BENCH_QUICK=1): the same, small, under a minute.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks import sipp as S

REPO = Path(__file__).resolve().parent.parent
CENTRES = 50
APPOINTMENTS = 5000
DAYS = 30
SLOT_STEP = dt.timedelta(minutes=20)  # 15-minute sessions + 5-minute buffer
RTP = (40000, 44999)

# ramp: steps above the fixed rate; low: steps below it, tried only when the fixed rate is not held.
# refine: steps bisecting between the last rate held and the first not held, to `grain` calls/s.
FULL = dict(fixed_rate=200, fixed_calls=6000, rounds=3, ramp=[300, 400, 500, 600, 800], low=[25, 50, 100, 150], step_s=10,
            refine=2, grain=25, perproc_ramp=[0.25, 0.5, 1, 2, 4, 8], perproc_step_s=10, perproc_grain=0.5,
            sessions=1000)
QUICK = dict(fixed_rate=100, fixed_calls=500, rounds=2, ramp=[200], low=[25, 50], step_s=3, refine=1, grain=25,
             perproc_ramp=[0.5], perproc_step_s=6, perproc_grain=0.25, sessions=200)
PERPROC_CHILDREN = 48   # processes at once in the baseline (a bound, so overload cannot run away)
PERPROC_LIMIT = 96      # SIPp's concurrent calls for the baseline


# --------------------------------------------------------------------------- database


def centre_codes() -> list[str]:
    from tawasul import demo

    codes = [g[0] for g in demo.GOVERNORATES]
    return codes + [f"C{n:02d}" for n in range(len(codes) + 1, CENTRES + 1)]


def seed(session, settings) -> None:
    """Demo region + 41 more centres with a phone each, the schedule all day every day, 5,000
    appointments over the month around now."""
    import sqlalchemy as sa

    from tawasul import demo
    from tawasul.models import (Appointment, AppointmentKind, AppointmentStatus, Centre, Citizen, Device,
                                DeviceKind, Governorate, GovernorSchedule, Region)
    from tawasul.validation import make_national_id
    from tawasul.vault import Vault, new_sip_secret

    demo.seed(session, settings)
    plan = session.scalars(sa.select(GovernorSchedule)).one()
    plan.session_days = "0,1,2,3,4,5,6"
    plan.video_start, plan.video_end = dt.time(0, 0), dt.time(23, 59)
    region = session.scalars(sa.select(Region)).one()
    vault = Vault.for_settings(settings)
    for code in centre_codes()[len(demo.GOVERNORATES):]:
        governorate = Governorate(region=region, code=code, name_ar=f"محافظة {code}", name_en=f"Governorate {code}")
        centre = Centre(governorate=governorate, code=code, name_ar=f"مركز {code}", name_en=f"Centre {code}",
                        allowed_networks="127.0.0.0/8")
        session.add(Device(kind=DeviceKind.CENTRE_PHONE, centre=centre, label=f"{code} video phone",
                           sip_user=demo.centre_phone_user(code), secret_encrypted=vault.encrypt(new_sip_secret())))
    session.flush()
    centres = {c.code: c.id for c in session.scalars(sa.select(Centre))}
    codes = centre_codes()

    rng = random.Random(7)
    citizens = []
    for n in range(1000):
        citizens.append(dict(national_id=make_national_id("1", f"{20000000 + n:08d}"), name=f"مواطن {n}",
                             mobile=f"+9665{n:08d}"))
    session.execute(sa.insert(Citizen), citizens)
    citizen_ids = list(session.scalars(sa.select(Citizen.id)))

    now = dt.datetime.now(dt.UTC)
    grid = now.replace(minute=now.minute - now.minute % 20, second=0, microsecond=0)
    first = grid - dt.timedelta(days=DAYS // 2)
    video_slots = [first + k * SLOT_STEP for k in range(DAYS * 24 * 3)]
    rows = []
    for k, slot in enumerate(video_slots):  # every video slot of the month, round-robin over the centres
        past = slot < now - dt.timedelta(minutes=settings.late_minutes)
        rows.append(dict(kind=AppointmentKind.VIDEO, slot_start=slot, seat=1, centre_id=centres[codes[k % CENTRES]],
                         status=(AppointmentStatus.COMPLETED if rng.random() < 0.85 else AppointmentStatus.NO_SHOW)
                         if past else AppointmentStatus.BOOKED))
    seat_day: Counter = Counter()
    while len(rows) < APPOINTMENTS:  # the rest: the governor's in-person sessions
        day = rng.randrange(DAYS)
        seat_day[day] += 1
        slot = (first + dt.timedelta(days=day)).replace(hour=10, minute=0)  # 13:00 in Riyadh
        rows.append(dict(kind=AppointmentKind.IN_PERSON, slot_start=slot, seat=seat_day[day], centre_id=None,
                         status=AppointmentStatus.COMPLETED if slot < now else AppointmentStatus.BOOKED))
    for n, row in enumerate(rows):
        row.update(reference=f"B-{n:08d}", checkin_code=f"{rng.randrange(10**6):06d}",
                   citizen_id=rng.choice(citizen_ids), slot_minutes=15, subject="", cancel_reason="",
                   created_at=now, updated_at=now)
    session.execute(sa.insert(Appointment), rows)


def hold_centre(db, code: str) -> str:
    """Make `code` a centre that asks for the booking code, with an appointment due now: its calls
    sit in GET DATA. Returns its phone's SIP user."""
    import sqlalchemy as sa

    from tawasul import demo
    from tawasul.models import Appointment, AppointmentKind, Centre, Citizen

    with db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == code)).one()
        centre.require_code = True
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        session.add(Appointment(reference="B-HOLD", checkin_code="123456", kind=AppointmentKind.VIDEO,
                                slot_start=now, slot_minutes=15, seat=2, centre_id=centre.id,
                                citizen_id=session.scalars(sa.select(Citizen.id).limit(1)).one()))
    return demo.centre_phone_user(code)


# --------------------------------------------------------------------------- the baseline


class _StdioRequest:
    """panoramisk-Request-like adapter over stdin/stdout: what a classic AGI script talks through."""

    def __init__(self, headers):
        self.headers = headers

    async def send_command(self, line: str) -> dict:
        from panoramisk.utils import parse_agi_result

        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        reply = sys.stdin.readline()
        if not reply.strip():
            raise ConnectionError("Asterisk closed the AGI session")
        return parse_agi_result(reply.strip())


def perproc_child() -> None:
    """One call, one process: read the AGI headers on stdin, run route_call (the same lookup as
    the FastAGI server, with a database opened for this call), set the decision, exit."""
    from agi.call import AgiCall, HandlerContext
    from agi.route_call import route_call
    from tawasul.db import Database
    from tawasul.settings import load

    headers = {}
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if not line:
            break
        key, _, value = line.partition(":")
        headers[key.strip()] = value.strip()
    settings = load()
    database = Database(settings.db_url)

    async def run():
        call = AgiCall(_StdioRequest(headers))
        decision = await route_call(call, HandlerContext(settings=settings, connect=database.engine.connect,
                                                                    db_inline=True, write=database.write))
        await call.set_variables(decision.variables())

    try:
        asyncio.run(run())
    finally:
        database.dispose()


def perproc_front(port: int, children: int) -> None:
    """A forking FastAGI front: each connection becomes a new `python` process whose stdin and
    stdout are the connection (inetd style). At most `children` at once; SIGTERM stops it."""
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    running: set[subprocess.Popen] = set()
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
        listener.close()

    signal.signal(signal.SIGTERM, on_term)
    code = "import benchmarks.agi_routing as b; b.perproc_child()"
    while not stop:
        while len(running) >= children:
            pid, _ = os.waitpid(-1, 0)
            running = {p for p in running if p.pid != pid}
        running = {p for p in running if p.poll() is None}
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        with conn:
            running.add(subprocess.Popen([sys.executable, "-c", code], stdin=conn.fileno(), stdout=conn.fileno(),
                                         stderr=subprocess.DEVNULL, cwd=REPO))
    for proc in running:
        proc.wait(timeout=30)


BARE_DECISION = b'EXEC MSet "TAWASUL_REASON=no_appointment,TAWASUL_DECISION=deny"\n'


def bare_front(port: int) -> None:
    """The FastAGI exchange with nothing behind it (on uvloop, as the real server): read the header
    block, send one fixed decision, read Asterisk's answer, close. SIGTERM stops it."""
    import uvloop

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\n", b""):
                pass
            writer.write(BARE_DECISION)
            await reader.readline()
        finally:
            writer.transport.abort()

    async def run() -> None:
        server = await asyncio.start_server(one, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    uvloop.run(run())


# --------------------------------------------------------------------------- processes


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port} after {timeout} s")


@contextlib.contextmanager
def child(args: list[str], env: dict, log: Path, port: int):
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --------------------------------------------------------------------------- load


def held(result: S.SippResult) -> bool:
    return result.failure_ratio < 0.001 and result.rate >= 0.9 * result.offered_rate


def drain(instance: S.Instance, timeout: float = 30) -> None:
    """Wait until Asterisk has no channel left (between steps), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and instance.channels():
        time.sleep(0.5)


def settle(instance: S.Instance, server_pid: int) -> None:
    """After a run: no channel left, and Asterisk and the FastAGI server idle again (an overload step
    leaves Asterisk busy for many seconds after its last call; the next run must not pay for it)."""
    drain(instance, 60)
    asterisk_pid = instance.runtime.pid()
    for pid in (server_pid, asterisk_pid) if asterisk_pid else (server_pid,):
        S.wait_idle(pid, 60)


def ramp(instance, workdir, label, services, rates, step_s, first=None, low=(), refine=0, grain=25.0, recover=None,
         **kw) -> tuple[float, list[S.SippResult]]:
    """The highest rate held over `rates` (steps of `step_s` s), stopping at the first not held.
    With `first` (a run already made), the ramp goes on above it if it was held, else through `low`.
    Then up to `refine` more steps bisect between the last rate held and the first not held (midpoints
    rounded to `grain`), each after `recover()`: a step not held leaves Asterisk slow for minutes."""
    results, best, failed = [], 0.0, None

    def step(rate: float) -> bool:
        drain(instance)
        result = S.run_sipp(instance.settings, workdir, label, services, rate, max(10, int(rate * step_s)), **kw)
        results.append(result)
        print("   ", result.line(), flush=True)
        return held(result)

    if first is not None:
        results.append(first)
        if held(first):
            best = first.offered_rate
        else:
            rates, failed = low, first.offered_rate
    for rate in rates:
        if not step(rate):
            failed = rate
            break
        best = rate
    for _ in range(refine if best and failed else 0):
        rate = round((best + failed) / 2 / grain) * grain
        if not best < rate < failed:
            break
        if recover is not None:
            recover()
        if step(rate):
            best = rate
        else:
            failed = rate
    return best, results


async def _hold_sessions(port: int, sip_user: str, count: int, pid: int, secret: str,
                         timeout: float = 60) -> tuple[int, float, float]:
    """`count` concurrent AGI sessions held in GET DATA; returns (sessions held, RSS MB, peak MB). Each
    answers as Asterisk: the shared secret, then the commands before the code prompt."""
    held_sessions, writers = 0, []

    async def one(n: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write((f"agi_network: yes\nagi_network_script: route_call\n"
                      f"agi_request: agi://127.0.0.1:{port}/route_call\nagi_channel: PJSIP/load-{n:08x}\n"
                      f"agi_language: en\nagi_type: PJSIP\nagi_uniqueid: {n}.0\nagi_context: load-test\n"
                      f"agi_extension: routed\nagi_priority: 3\nagi_arg_1: {sip_user}\n\n").encode())
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line or line.startswith(b"GET DATA"):
                return bool(line)
            writer.write(f"200 result=1 ({secret})\n".encode() if line.startswith(b"GET VARIABLE")
                         else b"200 result=0\n")  # ANSWER, SET VARIABLE TIMEOUT(absolute)

    try:
        results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True),
                                         timeout)
        held_sessions = sum(1 for r in results if r is True)
        await asyncio.sleep(1)
        rss, peak = S.rss_mb(pid)
    finally:
        for writer in writers:
            writer.transport.abort()
    return held_sessions, rss, peak


def decisions(log: Path) -> Counter:
    return Counter(m.group(1) for m in re.finditer(r"-> (\w+ \w+)", log.read_text(errors="replace")))


# --------------------------------------------------------------------------- main


def main() -> None:
    from tawasul.db import Database  # noqa: F401  (fail early if the app is not importable)
    from tawasul.settings import agi_secret, as_environ

    plan = QUICK if S.quick() else FULL
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    codes = centre_codes()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-agi-") as tmp:
        tmp = Path(tmp)
        with S.asterisk_instance(tmp, RTP, seed=seed) as instance:
            settings = instance.settings
            env = {**os.environ, **as_environ(settings), "PYTHONPATH": str(REPO)}
            perproc_port, bare_port = S.free_port(), S.free_port()
            perproc_to = [perproc_port]  # where the perproc- extension's AGI goes now

            def point_perproc_calls(port: int):
                perproc_to[0] = port
                instance.runtime.cli(f"dialplan set global LOAD_PERPROC_AGI 127.0.0.1:{port}")

            def fresh_asterisk():
                instance.restart()
                point_perproc_calls(perproc_to[0])  # a global set at run time: gone with the restart

            point_perproc_calls(bare_port)
            agi_log = tmp / "agi.log"
            print(f"database: {len(codes)} centres with a phone, {APPOINTMENTS} appointments over {DAYS} days; "
                  f"Asterisk + FastAGI ready in {time.monotonic() - started:.1f} s"
                  f"{'  (QUICK: small run)' if plan is QUICK else ''}", flush=True)
            serve = [sys.executable, "-m", "tawasul", "agi", "serve"]
            front = [sys.executable, "-c", f"import benchmarks.agi_routing as b; "
                     f"b.perproc_front({perproc_port}, {PERPROC_CHILDREN})"]
            bare = [sys.executable, "-c", f"import benchmarks.agi_routing as b; b.bare_front({bare_port})"]
            with child(serve, env, agi_log, settings.agi_port) as server, \
                    child(front, env, tmp / "perproc.log", perproc_port), \
                    child(bare, env, tmp / "bare.log", bare_port) as bare_server:
                static_services = ["static"]
                routed_services = [f"routed-{c}" for c in codes]
                perproc_services = [f"perproc-{c}" for c in codes]
                rate, calls = plan["fixed_rate"], plan["fixed_calls"]

                rss_start = S.rss_mb(server.pid)[0]

                # Both fixed-rate runs first, on an Asterisk no overload step has touched yet; then the ramps.
                print(f"-- static route: {rate} calls/s x {calls} calls", flush=True)
                static_fixed = S.run_sipp(settings, tmp, "static", static_services, rate, calls)
                print("   ", static_fixed.line(), flush=True)
                settle(instance, server.pid)
                print(f"-- routed: warm-up at 20 calls/s, then {rate} calls/s x {calls} calls", flush=True)
                warm = S.run_sipp(settings, tmp, "warm-up", routed_services, 20, 100)
                print("   ", warm.line(), flush=True)
                settle(instance, server.pid)
                routed_fixed = S.run_sipp(settings, tmp, "routed", routed_services, rate, calls)
                print("   ", routed_fixed.line(), flush=True)
                settle(instance, server.pid)
                rounds = plan["rounds"]
                print(f"-- set-up time, interleaved: {rounds} rounds of static, bare FastAGI (no lookup) and routed, "
                      f"{rate} calls/s x {calls // rounds} calls each", flush=True)
                interleaved = {"static": [], "bare": [], "routed": []}
                for _ in range(rounds):
                    for label, services, pid in (("static", static_services, server.pid),
                                                 ("bare", perproc_services, bare_server.pid),
                                                 ("routed", routed_services, server.pid)):
                        result = S.run_sipp(settings, tmp, label, services, rate, calls // rounds)
                        print("   ", result.line(), flush=True)
                        interleaved[label].append(result)
                        settle(instance, pid)
                print(f"-- highest rates held: steps of {plan['step_s']} s above {rate}/s (below if it was not held)",
                      flush=True)
                def recover(warm_services=None):
                    fresh_asterisk()
                    if warm_services:
                        S.run_sipp(settings, tmp, "warm-up", warm_services, 20, 100)
                    settle(instance, server.pid)

                refine = dict(refine=plan["refine"], grain=plan["grain"])
                static_max, _ = ramp(instance, tmp, "static", static_services, plan["ramp"], plan["step_s"],
                                     first=static_fixed, low=plan["low"], recover=lambda: recover(static_services),
                                     **refine)
                recover(routed_services)  # the static ramp's last step overloaded it
                routed_max, _ = ramp(instance, tmp, "routed", routed_services, plan["ramp"], plan["step_s"],
                                     first=routed_fixed, low=plan["low"], recover=lambda: recover(routed_services),
                                     **refine)
                recover()
                bare_max, _ = ramp(instance, tmp, "bare", perproc_services, plan["ramp"], plan["step_s"],
                                   first=interleaved["bare"][0], low=plan["low"], recover=recover, **refine)
                point_perproc_calls(perproc_port)
                fresh_asterisk()
                S.wait_idle(server.pid, 60)
                rss_after_load, peak_all = S.rss_mb(server.pid)

                # After the routed runs, so that 1,000 sessions cut at once are not in their figures.
                sessions = plan["sessions"]
                print(f"-- FastAGI memory: {sessions} concurrent AGI sessions held in GET DATA", flush=True)
                user = hold_centre(instance.db, codes[-1])
                rss_idle = S.rss_mb(server.pid)[0]
                held_sessions, rss, peak = asyncio.run(_hold_sessions(settings.agi_port, user, sessions, server.pid,
                                                                          agi_secret(settings)))
                print(f"    RSS {rss_idle:.1f} MB idle, {rss:.1f} MB with {held_sessions} sessions held", flush=True)
                S.wait_idle(server.pid, 30)
                with instance.db.write() as session:  # back to no centre asking for a code
                    import sqlalchemy as sa
                    from tawasul.models import Centre
                    session.execute(sa.update(Centre).values(require_code=False))

                print(f"-- process-per-call AGI: steps of {plan['perproc_step_s']} s "
                      f"(at most {PERPROC_CHILDREN} processes, {PERPROC_LIMIT} calls at once)", flush=True)
                perproc_max, _ = ramp(instance, tmp, "perproc", perproc_services, plan["perproc_ramp"],
                                      plan["perproc_step_s"], refine=plan["refine"], grain=plan["perproc_grain"],
                                      recover=recover, limit=PERPROC_LIMIT, recv_timeout_ms=20000)
                drain(instance, 60)
                mix = decisions(agi_log)

    top_static, top_routed = plan["ramp"][-1], plan["ramp"][-1]
    pooled = {label: [ms for r in results for ms in r.setup_ms] for label, results in interleaved.items()}
    mean = {label: statistics.mean(values) if values else float("nan") for label, values in pooled.items()}
    p99 = {label: S.percentile(values, 99) for label, values in pooled.items()}
    add_mean, add_p99 = mean["routed"] - mean["static"], p99["routed"] - p99["static"]
    interleaved_failed = sum(r.calls - r.successful for results in interleaved.values() for r in results)
    print("== results (one run; SIPp set-up time = INVITE -> 200 OK, in whole ms)")
    print(f"  static   @ {rate}/s: {static_fixed.line()}")
    print(f"  routed   @ {rate}/s: {routed_fixed.line()}")
    print(f"  set-up time over the {rounds} interleaved rounds ({interleaved_failed} failed calls): "
          + ", ".join(f"{label} mean {mean[label]:.2f} ms p99 {p99[label]:.0f} ms" for label in pooled))
    print(f"  routing adds: mean {add_mean:+.2f} ms, p99 {add_p99:+.2f} ms (interleaved rounds; in the "
          f"{calls}-call runs above: mean {routed_fixed.mean_ms() - static_fixed.mean_ms():+.2f} ms, "
          f"p99 {routed_fixed.p99_ms() - static_fixed.p99_ms():+.2f} ms); the bare FastAGI exchange alone "
          f"(Asterisk's AGI, no lookup) adds: mean {mean['bare'] - mean['static']:+.2f} ms, "
          f"p99 {p99['bare'] - p99['static']:+.2f} ms")
    print(f"  highest rate held (<0.1% failed, >=90% of offered): static {static_max:.0f}/s"
          f"{' (the top step: a floor)' if static_max == top_static else ''}, routed {routed_max:.0f}/s"
          f"{' (the top step: a floor)' if routed_max == top_routed else ''}, bare FastAGI {bare_max:.0f}/s"
          f"{' (the top step: a floor)' if bare_max == top_routed else ''}, process-per-call {perproc_max:g}/s")
    ratio_static = routed_max / static_max if static_max else float("nan")
    ratio_perproc = routed_max / perproc_max if perproc_max else float("inf")
    print(f"  routed/static {ratio_static:.2f}x, routed/process-per-call {ratio_perproc:.1f}x; "
          f"bare FastAGI/static {bare_max / static_max if static_max else float('nan'):.2f}x, "
          f"routed/bare FastAGI {routed_max / bare_max if bare_max else float('nan'):.2f}x")
    print(f"  FastAGI server RSS: {rss_start:.1f} MB at start, {rss_after_load:.1f} MB after the routed runs "
          f"(peak, overload included: {peak_all:.1f} MB), {rss_idle:.1f} MB idle, {rss:.1f} MB with "
          f"{held_sessions}/{sessions} sessions held in GET DATA")
    print("  route_call decisions during the run: "
          + ", ".join(f"{k} {n}" for k, n in mix.most_common()))
    checks = [
        (f"{rate}/s x {calls} calls through routing, no failure", routed_fixed.successful == calls),
        ("routing adds <= 5 ms mean set-up (interleaved rounds)", add_mean <= 5),
        ("routing adds <= 20 ms p99 set-up (interleaved rounds)", add_p99 <= 20),
        ("routed max rate >= 90% of static's", routed_max >= 0.9 * static_max),
        ("routed max rate >= 20x process-per-call's", routed_max >= 20 * perproc_max),
        (f"FastAGI RSS < 100 MB with {sessions} sessions held",
         held_sessions == sessions and rss < 100),
    ]
    if plan is QUICK:
        checks[0] = (f"{rate}/s x {calls} calls through routing, no failure", routed_fixed.successful == calls)
    print("== targets" + (" (QUICK mode: smaller than the real targets)" if plan is QUICK else ""))
    for name, ok in checks:
        print(f"  [{'pass' if ok else 'FAIL'}] {name}")
    print(f"  total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    if "--quick" in sys.argv:
        os.environ["BENCH_QUICK"] = "1"
    main()
