"""The governor's console under an AMI event storm: 1,000 AMI events a second for 60 s (registrations
and channel changes) while 20 consoles hold their live stream (/console/stream) open. Figures: the
delay from an event leaving "Asterisk" to a console's stream showing it (p50/p95/max over every
console; target p95 under 500 ms); streams that ended or failed before the end (target 0); the call
watcher's pending AMI actions, and the RSS of the call watcher and of the gunicorn workers before,
right after and 10 s after the burst (target: no growth of pending actions, RSS not 20% over its
level before the burst); and, judged too, AMI events the call watcher dropped (its bounded queues
full: lost call records or live state). Baseline in the same run: the same 20 streams, single flips
with the event source otherwise idle.

Why a scripted Asterisk. A real Asterisk on this 2-core machine cannot be made to emit 1,000
registration and channel events a second from real phones (each registration is a TLS REGISTER from
a phone process, each channel change a call). What is measured is Tawasul's own pipeline, all real
processes: the events go over TCP in the protocol Asterisk 22 writes (banner "Asterisk Call
Manager/11.0.0", the Login response then FullyBooted, DeviceStateList and CoreShowChannels
answered as event lists ending with their *Complete events, Ping, events with Privilege and the
Timestamp that manager.conf's timestampevents adds) to a real `tawasul call watch` (tawasul.ami ->
tawasul.livestate -> the live_state row of a real SQLite database), read by a real `tawasul web
serve` (gunicorn) whose /console/stream is held by 20 clients, each signed in as a governor-office
user from its own loopback address (127.0.0.2 ... 127.0.0.21).

The database: the demo region (9 centres with a phone each, the governor's desk), 41 more centres
whose phones have no session today (the background registrations), and today one checked-in video
session at each demo centre, so the page shows those 9 phones' registrations. During the burst one
of the 9 phones registers or unregisters every 100 ms (ContactStatus Created/Removed, then
DeviceStateChange); a flip is shown when a console's stream first carries its session's new state
(a flip not shown before the phone flips back twice counts as infinitely late). The rest of the
1,000 events a second: the other phones registering and unregistering, contacts re-qualified
(ContactStatus Reachable) and calls (Newchannel, Newstate Ringing and Up, Hangup) on every phone,
at most 30 channels up at once.

The stream cap. web/console.py serves at most TAWASUL_CONSOLE_MAX_STREAMS streams per worker
(web/cli.py: half the threads) and answers the others 503 (the console page then opens its stream
again a few seconds later). The run first opens the 20 streams on the default `tawasul web serve` (2 workers x 32 threads)
and prints how many it got; the measurement then runs on `--threads 40`, so that either worker alone
could hold all 20.

The call watcher runs as `tawasul call watch` inside watch_child, which only adds a thread writing
its AMI client's pending actions, dropped events and queue backlog to a file four times a second.

`--quick` (BENCH_QUICK=1): a 10 s burst and 8 flips at rest; under a minute.
"""
from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import http.client
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from benchmarks.sipp import cpu_seconds, quick, rss_mb
from tests.live import free_port, stop, tawasul, wait_http

REPO = Path(__file__).resolve().parent.parent
CONSOLES = 20
RATE = 1000          # AMI events a second during the burst
FLIP_EVERY = 0.1     # one of the shown phones flips this often during the burst ...
REST_EVERY = 0.5     # ... and at rest
EXTRA_PHONES = 41
MAX_CHANNELS = 30
SETTLE = 10.0        # seconds after the burst before the last sample
TARGET_MS = 500.0
GROWTH = 0.20
THREADS = 2 * CONSOLES
FULL = {"burst": 60.0, "rest_flips": 20}
QUICK = {"burst": 10.0, "rest_flips": 8}
USER, AGENT = "console_bench", "tawasul-bench-console"


# ------------------------------------------------------------------------------------ the data

def _build(settings) -> tuple[str, dict[int, str], list[str]]:
    """Schema, demo region, 41 more phones, today's sessions, the governor-office account.
    Returns (its password, {session id: its centre's phone}, every phone)."""
    from tawasul import booking, demo, references, scheduling, users
    from tawasul.db import Database, upgrade
    from tawasul.models import (Appointment, AppointmentKind, AppointmentStatus, Centre, Citizen, Device,
                                DeviceKind, Governorate, Region, Role)
    from tawasul.validation import make_national_id
    from tawasul.vault import Vault, new_sip_secret

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    with db.write() as session:
        demo.seed(session, settings)
        region, vault = session.scalars(sa.select(Region)).one(), Vault.for_settings(settings)
        for n in range(1, EXTRA_PHONES + 1):
            code = f"X{n:02d}"
            centre = Centre(governorate=Governorate(region=region, code=code, name_ar=f"محافظة {code}",
                                                    name_en=f"Governorate {code}"),
                            code=code, name_ar=f"مركز {code}", name_en=f"Centre {code}")
            session.add(Device(kind=DeviceKind.CENTRE_PHONE, centre=centre, label=f"{code} video phone",
                               sip_user=demo.centre_phone_user(code), secret_encrypted=vault.encrypt(new_sip_secret())))
        _user, password = users.create_user(session, USER, Role.GOVERNOR_OFFICE, "Governor's office")
        zone = scheduling.zone(booking.schedule(session))
        first = dt.datetime.combine(dt.datetime.now(zone).date(), dt.time(9, 0), tzinfo=zone)
        for k, (code, *_rest) in enumerate(demo.GOVERNORATES):
            session.add(Appointment(
                reference=references.new_reference("appointment"), checkin_code="4321",
                citizen=Citizen(national_id=make_national_id("1", f"{70000000 + k:08d}"), name=f"مواطن {k}",
                                mobile=f"+96655{k:07d}"),
                kind=AppointmentKind.VIDEO, slot_minutes=15, status=AppointmentStatus.CHECKED_IN,
                centre=session.scalars(sa.select(Centre).where(Centre.code == code)).one(),
                slot_start=first + k * dt.timedelta(minutes=20)))
        session.flush()
        sessions = {a.id: demo.centre_phone_user(a.centre.code) for a in session.scalars(sa.select(Appointment))}
        phones = list(session.scalars(sa.select(Device.sip_user)))
    db.dispose()
    return password, sessions, phones


# ------------------------------------------------------------------------------------ "Asterisk"

def _message(fields: dict) -> bytes:
    return "".join(f"{key}: {value}\r\n" for key, value in fields.items()).encode() + b"\r\n"


class Asterisk:
    """Asterisk 22's manager interface as the call watcher sees it, and the storm of events."""

    def __init__(self, user: str, secret: str, phones: list[str], shown: list[str]):
        self.user, self.secret, self.shown = user, secret, shown
        self.others = [p for p in phones if p not in shown]
        self.registered = {p: p in shown or n % 2 == 0 for n, p in enumerate(phones)}
        self.channels: dict[str, list] = {}  # name -> [phone, state, uniqueid]
        self.writers: list[asyncio.StreamWriter] = []
        self.rng, self.logins, self.flips, self.calls = random.Random(11), 0, 0, 0

    def event(self, name: str, privilege: str, fields: dict) -> bytes:
        return _message({"Event": name, "Privilege": f"{privilege},all", "Timestamp": f"{time.time():.6f}", **fields})

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        logged_in = False
        try:
            while True:
                block = (await reader.readuntil(b"\r\n\r\n")).decode()
                action = {k.lower(): v for k, _, v in (line.partition(": ") for line in block.split("\r\n")) if v}
                name, aid = action.get("action", "").lower(), {"ActionID": action.get("actionid", "")}
                if name == "login":
                    logged_in = action.get("username") == self.user and action.get("secret") == self.secret
                    writer.write(_message({"Response": "Success", **aid, "Message": "Authentication accepted"}
                                          if logged_in else {"Response": "Error", **aid,
                                                             "Message": "Authentication failed"}))
                    if logged_in:
                        writer.write(self.event("FullyBooted", "system",
                                                {"Uptime": 100, "LastReload": 100, "Status": "Fully Booted"}))
                        self.logins += 1
                        self.writers.append(writer)
                elif not logged_in:
                    writer.write(_message({"Response": "Error", **aid, "Message": "Permission denied"}))
                elif name == "ping":
                    writer.write(_message({"Response": "Success", **aid, "Ping": "Pong",
                                           "Timestamp": f"{time.time():.6f}"}))
                elif name == "devicestatelist":
                    writer.write(self.device_list(aid))
                elif name == "coreshowchannels":
                    writer.write(self.channel_list(aid))
                elif name == "logoff":
                    writer.write(_message({"Response": "Goodbye", **aid, "Message": "Thanks for all the fish."}))
                    break
                else:
                    writer.write(_message({"Response": "Error", **aid, "Message": "Invalid/unknown command"}))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()

    def device_list(self, aid: dict) -> bytes:
        out = [_message({"Response": "Success", **aid, "EventList": "start",
                         "Message": "Device State Changes will follow"})]
        for phone, up in self.registered.items():
            out.append(_message({"Event": "DeviceStateChange", **aid, "Device": f"PJSIP/{phone}",
                                 "State": "NOT_INUSE" if up else "UNAVAILABLE"}))
        out.append(_message({"Event": "DeviceStateListComplete", **aid, "EventList": "Complete",
                             "ListItems": len(self.registered)}))
        return b"".join(out)

    def channel_list(self, aid: dict) -> bytes:
        out = [_message({"Response": "Success", **aid, "EventList": "start", "Message": "Channels will follow"})]
        out += [_message({"Event": "CoreShowChannel", **aid, **self._channel(name), "Application": "Dial",
                          "ApplicationData": "", "Duration": "00:00:01", "BridgeId": ""}) for name in self.channels]
        out.append(_message({"Event": "CoreShowChannelsComplete", **aid, "EventList": "Complete",
                             "ListItems": len(self.channels)}))
        return b"".join(out)

    def _channel(self, name: str) -> dict:
        phone, state, uniqueid = self.channels[name]
        return {"Channel": name, "ChannelState": {"Down": 0, "Ringing": 5, "Up": 6}[state], "ChannelStateDesc": state,
                "CallerIDNum": phone, "CallerIDName": "<unknown>", "ConnectedLineNum": "<unknown>",
                "ConnectedLineName": "<unknown>", "Language": "ar", "AccountCode": "", "Context": "from-centre",
                "Exten": "governor", "Priority": 1, "Uniqueid": uniqueid, "Linkedid": uniqueid}

    def register(self, phone: str, up: bool) -> list[bytes]:
        self.registered[phone] = up
        return [self.event("ContactStatus", "system", {
                    "URI": f"sip:{phone}@127.0.0.1:5062;transport=tls", "ContactStatus": "Created" if up else "Removed",
                    "AOR": phone, "EndpointName": phone, "RoundtripUsec": 0}),
                self.event("DeviceStateChange", "call",
                           {"Device": f"PJSIP/{phone}", "State": "NOT_INUSE" if up else "UNAVAILABLE"})]

    def call_step(self) -> list[bytes]:
        """A new channel, or one channel a step on (Down -> Ringing -> Up -> hung up)."""
        if len(self.channels) < MAX_CHANNELS and (not self.channels or self.rng.random() < 0.3):
            self.calls += 1
            name = f"PJSIP/{self.rng.choice(list(self.registered))}-{self.calls:08x}"
            self.channels[name] = [name[6:-9], "Down", f"{time.time():.0f}.{self.calls}"]
            return [self.event("Newchannel", "call", self._channel(name))]
        name = self.rng.choice(list(self.channels))
        fields = self._channel(name)
        if fields["ChannelStateDesc"] == "Up":
            del self.channels[name]
            return [self.event("Hangup", "call", {**fields, "Cause": 16, "Cause-txt": "Normal Clearing"})]
        self.channels[name][1] = "Ringing" if fields["ChannelStateDesc"] == "Down" else "Up"
        return [self.event("Newstate", "call", self._channel(name))]

    def background(self) -> list[bytes]:
        draw = self.rng.random()
        if draw < 0.1:
            phone = self.rng.choice(self.others)
            return self.register(phone, not self.registered[phone])
        if draw < 0.3:  # a contact re-qualified: no change of state
            phone = self.rng.choice([p for p, up in self.registered.items() if up])
            return [self.event("ContactStatus", "system", {
                "URI": f"sip:{phone}@127.0.0.1:5062;transport=tls", "ContactStatus": "Reachable", "AOR": phone,
                "EndpointName": phone, "RoundtripUsec": self.rng.randint(800, 5000)})]
        return self.call_step()

    def send(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)

    def flip(self) -> tuple[str, bool, float]:
        """The next shown phone registers or unregisters: (phone, registered now, when sent)."""
        phone = self.shown[self.flips % len(self.shown)]
        self.flips += 1
        up = not self.registered[phone]
        self.send(b"".join(self.register(phone, up)))
        return phone, up, time.monotonic()

    async def storm(self, seconds: float, flips: list) -> tuple[int, float]:
        """RATE events a second (flips included) for `seconds`: (events sent, seconds taken)."""
        start, sent, next_flip = time.monotonic(), 0, time.monotonic()
        while (now := time.monotonic()) < start + seconds:
            if now >= next_flip:
                flips.append(self.flip())
                sent, next_flip = sent + 2, next_flip + FLIP_EVERY
            batch = []
            while sent < (now - start) * RATE:
                events = self.background()
                batch += events
                sent += len(events)
            self.send(b"".join(batch))
            for writer in self.writers:
                await writer.drain()  # a reader that falls behind slows the storm down: the rate shows it
            await asyncio.sleep(0.002)
        return sent, time.monotonic() - start


# ------------------------------------------------------------------------------------ the consoles

def _login(port: int, source: str, password: str) -> str:
    """Sign in from `source` as a browser does (the form, its CSRF token); the Cookie header to send."""
    cookies: dict[str, str] = {}

    def request(method: str, path: str, body: str | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
        try:
            connection.request(method, path, body=body, headers={
                "User-Agent": AGENT, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), **(headers or {})})
            response = connection.getresponse()
            page = response.read().decode()
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, value = header.split(";", 1)[0].partition("=")
                cookies[name.strip()] = value
            return response.status, page
        finally:
            connection.close()

    _status, page = request("GET", "/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "username": USER, "password": password})
    status, _page = request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 302:
        raise RuntimeError(f"sign-in from {source} answered {status}")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


class Console:
    """One governor's console holding /console/stream: every state event as (arrival, ami, {phone: registered})."""

    def __init__(self, source: str, cookie: str, sessions: dict[int, str]):
        self.source, self.cookie, self.sessions = source, cookie, sessions
        self.seen: list[tuple[float, bool, dict[str, bool]]] = []
        self.status, self.failure = 0, ""  # failure: why the stream ended before the run did

    async def run(self, port: int) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(self.source, 0))
            writer.write(f"GET /console/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {AGENT}\r\n"
                         f"Accept: text/event-stream\r\nCookie: {self.cookie}\r\n\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            self.status = int(head.split()[1])
            if self.status != 200:
                self.failure = f"HTTP {self.status}"
                return
            chunked, text = "chunked" in head.lower(), ""
            while True:
                if chunked:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    data = (await reader.readexactly(size + 2))[:-2] if size else b""
                else:
                    data = await reader.read(65536)
                if not data:
                    break
                arrival, text = time.monotonic(), text + data.decode()
                while "\n\n" in text:
                    block, text = text.split("\n\n", 1)
                    if block.startswith("event: state"):
                        state = json.loads(block.split("data: ", 1)[1])
                        self.seen.append((arrival, state["ami"],
                                          {self.sessions[s["id"]]: s["registered"] for s in state["sessions"]}))
            self.failure = "the server ended the stream"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is a disconnect, reported as such
            self.failure = repr(exc)
        finally:
            if writer is not None:
                writer.close()

    def ready(self, shown: list[str]) -> bool:
        return bool(self.failure) or bool(self.seen and self.seen[-1][1] and all(self.seen[-1][2][p] for p in shown))


def _delays(flips: list[tuple[str, bool, float]], consoles: list[Console]) -> list[float]:
    """Per flip and console: seconds from the flip's events being sent to the console's stream first
    showing the new state; inf when not shown before the phone's flip after next was sent."""
    sent_at: dict[str, list[float]] = {}
    for phone, _up, at in flips:
        sent_at.setdefault(phone, []).append(at)
    delays = []
    for console in consoles:
        arrivals = [seen[0] for seen in console.seen]
        for phone, up, at in flips:
            times = sent_at[phone]
            k = times.index(at)
            limit = times[k + 2] if k + 2 < len(times) else math.inf
            shown = next((t for t, _ami, view in console.seen[bisect.bisect_left(arrivals, at):]
                          if t < limit and view.get(phone) is up), None)
            delays.append(math.inf if shown is None else shown - at)
    return delays


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000 if ordered else math.nan


# ------------------------------------------------------------------------------------ processes

def watch_child(stats: str) -> None:
    """`tawasul call watch` as is, plus a thread writing its AMI client's pending actions, dropped
    events and subscriber backlog to `stats` (JSON) four times a second."""
    from tawasul import ami
    from tawasul.cli import main as cli

    clients, init = [], ami.AmiClient.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        clients.append(self)

    def report():
        while True:
            time.sleep(0.25)
            if clients:
                client = clients[0]
                figures = {"pending": client.pending_actions, "dropped": client.dropped_events,
                           "backlog": [q.qsize() for q, _wanted in list(client._subscribers)],
                           "connected": client.connected}
                Path(stats + ".tmp").write_text(json.dumps(figures))
                os.replace(stats + ".tmp", stats)

    ami.AmiClient.__init__ = recording_init
    threading.Thread(target=report, daemon=True).start()
    cli(["call", "watch"], prog_name="tawasul")


def _serve(env: dict, log: Path, threads: int | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(log, "wb") as out:
        process = tawasul(["web", "serve", "--workers", "2", *(["--threads", str(threads)] if threads else [])],
                          {**env, "TAWASUL_WEB_PORT": str(port)}, stdout=out, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    deadline = time.monotonic() + 20
    while len(_workers(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # both workers booted and importing nothing more
    return process, port


def _workers(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _sample(watch: int, web: int, stats: Path) -> dict:
    workers = _workers(web)
    return {"watch": rss_mb(watch)[0], "web": sum(rss_mb(p)[0] for p in workers),
            "cpu_watch": cpu_seconds(watch), "cpu_web": sum(cpu_seconds(p) for p in workers),
            **json.loads(stats.read_text())}


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def _open_all(port: int, consoles: list[Console]) -> Counter:
    """Open every console's stream at once, hold them 2 s: the statuses answered."""
    tasks = [asyncio.create_task(c.run(port)) for c in consoles]
    await asyncio.sleep(2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Counter(c.status for c in consoles)


async def _measure(settings, env: dict, secret: str, web: subprocess.Popen, port: int, consoles: list[Console],
                   phones: list[str], plan: dict, tmp: Path) -> dict:
    shown = sorted(set(consoles[0].sessions.values()))
    from tawasul import ami

    asterisk = Asterisk(ami.username(settings, "watch"), secret, phones, shown)
    server = await asyncio.start_server(asterisk.serve, "127.0.0.1", settings.ami_port)
    stats = tmp / "watch-stats.json"
    with open(tmp / "watch.log", "wb") as out:
        child = f"import benchmarks.console as b; b.watch_child({str(stats)!r})"
        watch = subprocess.Popen([sys.executable, "-c", child],
                                 env={**os.environ, **env}, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    tasks = [asyncio.create_task(c.run(port)) for c in consoles]
    result: dict = {"rest": [], "burst": []}
    try:
        await _until(lambda: stats.exists() and all(c.ready(shown) for c in consoles), 60,
                     "every console showing AMI up and the 9 phones registered")
        for _ in range(plan["rest_flips"]):
            result["rest"].append(asterisk.flip())
            await asyncio.sleep(REST_EVERY)
        await asyncio.sleep(2)
        result["before"] = _sample(watch.pid, web.pid, stats)
        peaks = {"backlog": [0] * len(result["before"]["backlog"]), "pending": 0}

        async def watch_peaks():
            while True:
                await asyncio.sleep(0.25)
                figures = json.loads(stats.read_text())
                peaks["pending"] = max(peaks["pending"], figures["pending"])
                peaks["backlog"] = [max(a, b) for a, b in zip(peaks["backlog"], figures["backlog"])]

        poller = asyncio.create_task(watch_peaks())
        result["sent"], result["seconds"] = await asterisk.storm(plan["burst"], result["burst"])
        result["after"] = _sample(watch.pid, web.pid, stats)
        await asyncio.sleep(SETTLE)
        poller.cancel()
        result["settled"], result["peaks"] = _sample(watch.pid, web.pid, stats), peaks
        result["logins"] = asterisk.logins
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(stop, watch)
        server.close()
    return result


# ------------------------------------------------------------------------------------ main

def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    from tawasul import ami
    from tawasul.settings import as_environ, load

    plan = QUICK if quick() else FULL
    with tempfile.TemporaryDirectory(prefix="tawasul-bench-console-") as tmp:
        tmp = Path(tmp)
        settings = load({"state_dir": tmp / "state", "demo": True, "ami_port": free_port()}, environ={})
        password, sessions, phones = _build(settings)
        secret = ami.secret(settings, "watch")  # generated now, in the state folder the call watcher reads
        env = {**as_environ(settings), "TAWASUL_CONFIG": str(tmp / "none.toml")}
        sources = [f"127.0.0.{n + 2}" for n in range(CONSOLES)]

        web, port = _serve(env, tmp / "web-default.log")
        try:
            cookies = [_login(port, source, password) for source in sources]
            opened = asyncio.run(_open_all(port, [Console(s, c, sessions) for s, c in zip(sources, cookies)]))
        finally:
            stop(web)
        web, port = _serve(env, tmp / "web.log", THREADS)
        consoles = [Console(s, c, sessions) for s, c in zip(sources, cookies)]
        try:
            r = asyncio.run(_measure(settings, env, secret, web, port, consoles, phones, plan, tmp))
        finally:
            stop(web)

    rest, burst = _delays(r["rest"], consoles), _delays(r["burst"], consoles)
    before, after, settled = r["before"], r["after"], r["settled"]
    print(f"{CONSOLES} consoles on `tawasul web serve --workers 2 --threads {THREADS}`; a real `tawasul call watch`"
          f" fed by a scripted Asterisk 22 AMI; {len(phones)} phones, {len(set(sessions.values()))} shown on the "
          f"page; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
          f"{'  (QUICK: short burst)' if plan is QUICK else ''}")
    print(f"  default `tawasul web serve` (2 workers x 32 threads): {opened[200]} of {CONSOLES} streams opened "
          f"({ {k: n for k, n in opened.items() if k != 200} or 'none refused'})  "
          f"{_verdict(opened[200] == CONSOLES)}")
    print(f"  {'phase':8} {'events/s':>8} {'flips':>6} {'samples':>7} {'missed':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'max ms':>8} {'p95/rest':>8}  target p95 < {TARGET_MS:.0f} ms")
    for name, delays, flips, rate in (("at rest", rest, r["rest"], 0.0),
                                      ("burst", burst, r["burst"], r["sent"] / r["seconds"])):
        verdict = "baseline" if name == "at rest" else _verdict(_ms(delays, 0.95) < TARGET_MS)
        print(f"  {name:8} {rate:8.0f} {len(flips):6d} {len(delays):7d} {sum(map(math.isinf, delays)):6d} "
              f"{_ms(delays, 0.5):8.1f} {_ms(delays, 0.95):8.1f} {_ms(delays, 1.0):8.1f} "
              f"{_ms(delays, 0.95) / _ms(rest, 0.95):7.1f}x  {verdict}")
    failed = [f"{c.source}: {c.failure}" for c in consoles if c.failure]
    print(f"  stream disconnects: {len(failed)} of {CONSOLES}{' (' + '; '.join(failed[:3]) + ')' if failed else ''}; "
          f"AMI logins: {r['logins']}  {_verdict(not failed and r['logins'] == 1)}")
    print(f"  call watch during the burst: {100 * (after['cpu_watch'] - before['cpu_watch']) / r['seconds']:.0f}% of "
          f"a core; events queued up to {' and '.join(map(str, r['peaks']['backlog']))} (call records', live "
          f"state's queue); gunicorn workers {100 * (after['cpu_web'] - before['cpu_web']) / r['seconds']:.0f}% of a "
          f"core")
    print(f"  AMI events dropped by the call watch (a subscriber's queue full): {settled['dropped']}  "
          f"{_verdict(settled['dropped'] == 0)}")
    print(f"  {'':24} {'before':>8} {'after':>8} {f'+{SETTLE:.0f} s':>8} {'growth':>7}  "
          f"target: no growth (RSS within {GROWTH:.0%})")
    grew = settled["pending"] > before["pending"]
    print(f"  {'pending AMI actions':24} {before['pending']:8d} {after['pending']:8d} {settled['pending']:8d} "
          f"{settled['pending'] - before['pending']:+7d}  {_verdict(not grew)} (peak {r['peaks']['pending']})")
    for key, label in (("watch", "call watch RSS MB"), ("web", "gunicorn workers RSS MB")):
        growth = settled[key] / before[key] - 1
        print(f"  {label:24} {before[key]:8.1f} {after[key]:8.1f} {settled[key]:8.1f} {growth:+7.0%}  "
              f"{_verdict(growth <= GROWTH)}")


if __name__ == "__main__":
    main()
