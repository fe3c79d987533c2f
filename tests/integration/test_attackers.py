"""Attackers against the running system: the system stays up, a real call still goes through, an attacker
learns nothing.

- sipvicious (PyPI) `sipvicious_svwar` (extension enumeration) and `sipvicious_svcrack` (password guessing)
  against the real Asterisk. sipvicious speaks plain UDP only ("Protocol scheme tls is not supported in
  SIPVicious OSS"): it is aimed at the plain SIP port (sip_udp_port on 127.0.0.1, where nothing listens
  unless the load test is on), and at the TLS port through a small UDP-to-TLS relay, the phones' own
  transport. A TLS client checks that every REGISTER/OPTIONS/INVITE answers alike for known and unknown users.
- a FastAGI flood (2,000 connections within seconds: no secret, garbage, half-open, slow senders, strangers
  from other loopback addresses) while a booked centre phone calls the governor's desk.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from provisioning import certs
from tawasul import booking, settings as settings_module
from tawasul.models import Appointment, AppointmentKind, AppointmentStatus, Centre, Device, GovernorSchedule
from tawasul.references import new_checkin_code, new_reference
from tawasul.vault import Vault
from tests.live import free_port, wait_for
from tests.unit.test_agi_server import agi_call, agi_headers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CENTRE, GOVERNOR = "centre-bdr-1", "governor-desk-1"
# Who an attacker would try: the real user names (a centre, the desk), common extensions, made-up names.
USERS = [CENTRE, GOVERNOR, "100", "1000", "admin", "centre-xyz-9"]
METHODS = ("REGISTER", "OPTIONS", "INVITE")
SIPVICIOUS = Path(sys.executable).parent


def secret_of(p, user: str) -> str:
    with p.db.read() as session:
        token = session.scalars(sa.select(Device.secret_encrypted).where(Device.sip_user == user)).one()
    return Vault.for_settings(p.settings).decrypt(token)


def ca_file(p) -> str:
    return str(certs.certs_dir(p.settings) / certs.CA_CERT_NAME)


# --------------------------------------------------------------------------- SIP over TLS


def _messages(buffer: bytearray):
    """Complete SIP messages taken off the front of `buffer`."""
    while b"\r\n\r\n" in buffer:
        head = bytes(buffer).split(b"\r\n\r\n", 1)[0]
        length = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        end = len(head) + 4 + (int(length.group(1)) if length else 0)
        if len(buffer) < end:
            return
        yield bytes(buffer[:end])
        del buffer[:end]


class TlsRelay:
    """Lets a UDP-only attacker speak to the TLS port: each UDP sender gets its own TLS connection to
    Asterisk; each datagram goes out on it, each SIP message that comes back is sent back as one datagram."""

    def __init__(self, port: int, cafile: str):
        self.port, self.context = port, ssl.create_default_context(cafile=cafile)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.address = f"udp://127.0.0.1:{self.udp.getsockname()[1]}"
        self.links: dict = {}
        self.errors: list[str] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                data, sender = self.udp.recvfrom(65535)
            except (TimeoutError, socket.timeout):
                continue
            try:
                if sender not in self.links:
                    raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                    self.links[sender] = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
                    threading.Thread(target=self._back, args=(sender, self.links[sender]), daemon=True).start()
                self.links[sender].sendall(data)
            except OSError as exc:   # say so in the test's output; the next datagram tries a new connection
                self.errors.append(f"{sender}: {exc!r}")
                self.links.pop(sender, None)

    def _back(self, sender, link):
        buffer = bytearray()
        link.settimeout(0.5)
        while not self.stopping:
            try:
                chunk = link.recv(65535)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            for message in _messages(buffer):
                self.udp.sendto(message, sender)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        for link in self.links.values():
            link.close()
        self.udp.close()


@pytest.fixture
def tls_relay(provisioned_asterisk):
    relay = TlsRelay(provisioned_asterisk.settings.sip_tls_port, ca_file(provisioned_asterisk))
    yield relay
    relay.close()


def ask_tls(p, method: str, user: str, timeout: float = 5) -> str:
    """One request for `user` over TLS, no credentials; Asterisk's final answer."""
    context = ssl.create_default_context(cafile=ca_file(p))
    port = p.settings.sip_tls_port
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout),
                             server_hostname="127.0.0.1") as sock:
        host, local = sock.getsockname()[:2]
        uri = f"sip:{'' if method == 'REGISTER' else user + '@'}127.0.0.1:{port};transport=tls"
        body = (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\nm=audio 9 RTP/SAVP 0\r\n"
                if method == "INVITE" else "")
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/TLS {host}:{local};rport;branch=z9hG4bK{uuid.uuid4().hex[:16]}",
                 "Max-Forwards: 70", f"From: <sip:{user}@127.0.0.1>;tag={uuid.uuid4().hex[:8]}",
                 f"To: <sip:{user}@127.0.0.1>", f"Call-ID: {uuid.uuid4().hex}", f"CSeq: 1 {method}",
                 f"Contact: <sip:{user}@{host}:{local};transport=tls>", "Expires: 60"]
        if body:
            lines.append("Content-Type: application/sdp")
        sock.sendall(("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        buffer = bytearray()
        while True:
            buffer += sock.recv(65535)
            for message in _messages(buffer):
                text = message.decode(errors="replace")
                if not text.startswith("SIP/2.0 1"):
                    return text


CHANGING = re.compile(r'(nonce|opaque)="[^"]*"')


def shape(response: str) -> list[str]:
    """What an answer says apart from what each request makes it echo (Via, From, To, Call-ID, CSeq) and the
    values that change with every challenge (nonce, opaque)."""
    head = response.split("\r\n\r\n", 1)[0].split("\r\n")
    kept = [head[0]]
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("via", "from", "to", "call-id", "cseq", "v", "f", "t", "i"):
            value = "<echo>"
        kept.append(name.strip() + ": " + CHANGING.sub(r"\1=*", value.strip()))
    return kept


# --------------------------------------------------------------------------- sipvicious


def sipvicious(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`sipvicious_<tool>` bound to loopback (its own free source port), output as text."""
    command = [str(SIPVICIOUS / f"sipvicious_{tool}"), "-b", "127.0.0.1", "-x", "127.0.0.1",
               "-P", str(free_port()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    done.output = done.stdout + done.stderr
    return done


def test_svwar_finds_no_extension(provisioned_asterisk, tls_relay, tmp_path):
    p = provisioned_asterisk
    plain = f"udp://127.0.0.1:{p.settings.sip_udp_port}"
    words = tmp_path / "users.txt"
    words.write_text("\n".join(USERS) + "\n")
    security = p.runtime.log_dir / "security"
    offset = security.stat().st_size if security.exists() else 0
    started = time.monotonic()
    for method in METHODS:
        # Plain SIP: nothing answers at all.
        run = sipvicious("svwar", "--force", "-m", method, "-d", str(words), plain)
        print(f"svwar -m {method} {plain}: exit {run.returncode}\n{run.output.strip()}")
        assert run.returncode == 30 and "timed out" in run.output and "' exists" not in run.output
        # TLS: svwar learns the answer to a random name first, then reports any name answered otherwise.
        # It stops at the first answer it cannot place, so each name gets a run of its own.
        for user in USERS:
            words.write_text(user + "\n")
            run = sipvicious("svwar", "--force", "-m", method, "-d", str(words), tls_relay.address)
            if run.returncode == 30:   # svwar waits 3 s for its first answer: once more on a busy machine
                print(f"svwar -m {method} {user} over TLS: no answer within 3 s ({tls_relay.errors}); again")
                run = sipvicious("svwar", "--force", "-m", method, "-d", str(words), tls_relay.address)
            print(f"svwar -m {method} {user} over TLS: exit {run.returncode}: "
                  + " | ".join(line for line in run.output.splitlines() if "Bad user" in line or "found" in line))
            assert "SIP/2.0 401" in run.output, (run.output, tls_relay.errors)  # it reached Asterisk (relay)
            assert "' exists" not in run.output and "probably exists" not in run.output, run.output
            assert "found nothing" in run.output, run.output
    print(f"svwar: {len(METHODS) * (1 + len(USERS))} runs in {time.monotonic() - started:.1f} s")
    # IT sees the scan: Asterisk's security log names what was tried.
    logged = security.read_text(errors="replace")[offset:]
    events = re.findall(r'SecurityEvent="(\w+)"', logged)
    print("security log: " + ", ".join(f"{e} x{events.count(e)}" for e in sorted(set(events))))
    assert "InvalidAccountID" in events and "centre-xyz-9" in logged
    # Every answer, for any user and method, is the same challenge; and it names no version. Also for a
    # centre whose phones may not connect from here (its ACL): no 403 tells a scanner the name is real.
    with p.db.write() as session:
        session.scalars(sa.select(Centre).where(Centre.code == "ULA")).one().allowed_networks = "10.99.0.0/16"
    try:
        assert p.apply().ok
        answers = {(method, user): ask_tls(p, method, user) for method in METHODS for user in USERS + ["centre-ula-1"]}
    finally:
        with p.db.write() as session:
            session.scalars(sa.select(Centre).where(Centre.code == "ULA")).one().allowed_networks = "127.0.0.0/8"
        assert p.apply().ok
    for method in METHODS:
        shapes = {user: shape(answers[method, user]) for user in USERS + ["centre-ula-1"]}
        print(f"{method}: " + " / ".join(shapes[CENTRE]))
        assert all(s == shapes["centre-xyz-9"] for s in shapes.values()), shapes
        assert shapes[CENTRE][0] == "SIP/2.0 401 Unauthorized"
        assert "Server: Tawasul" in shapes[CENTRE] and not any("asterisk" in line.lower() for line in shapes[CENTRE])


def test_svcrack_finds_no_password_on_plain_sip_and_the_phone_still_calls(
        provisioned_asterisk, agi_server, tls_relay, booked, governor, phones, tmp_path):
    p = provisioned_asterisk
    real = secret_of(p, CENTRE)
    guesses = tmp_path / "guesses.txt"
    guesses.write_text("1234\npassword\ncentre-bdr-1\ntawasul\nwrong-" + real[:8] + "\n")
    with_real = tmp_path / "with-real.txt"
    with_real.write_text(guesses.read_text() + real + "\n")
    plain = f"udp://127.0.0.1:{p.settings.sip_udp_port}"
    security = p.runtime.log_dir / "security"
    offset = security.stat().st_size if security.exists() else 0
    for words in (guesses, with_real):
        run = sipvicious("svcrack", "-u", CENTRE, "-d", str(words), plain)
        print(f"svcrack {plain} ({words.name}): exit {run.returncode}\n{run.output.strip()}")
        assert real not in run.output and "The password for" not in run.output
    # Over TLS, the phones' transport: wrong guesses find nothing (and are logged for IT) ...
    run = sipvicious("svcrack", "-u", CENTRE, "-d", str(guesses), tls_relay.address)
    print(f"svcrack over TLS (wrong guesses): exit {run.returncode}\n{run.output.strip()}")
    assert "The password for" not in run.output and real not in run.output
    assert wait_for(lambda: "ChallengeResponseFailed" in security.read_text(errors="replace")[offset:]
                    and CENTRE in security.read_text(errors="replace")[offset:], 5, "the guesses in the security log")
    # ... and the real password is found there, as it should be (what a password is for): svcrack did try.
    run = sipvicious("svcrack", "-u", CENTRE, "-d", str(with_real), tls_relay.address)
    print(f"svcrack over TLS (the real password last): exit {run.returncode}: found it: {real in run.output}")
    assert real in run.output
    tls_relay.close()  # its TLS connections go, and with them the contact svcrack's REGISTER left
    assert p.runtime.is_running()
    # The real phone registers and its booked call reaches the desk.
    booked(CENTRE, -60, 15)
    phone = phones.start(CENTRE)
    reaches_desk(phone, governor)
    print(p.runtime.cli("pjsip show contacts"))


# --------------------------------------------------------------------------- a booked call


@pytest.fixture(scope="module")
def booked(provisioned_asterisk, agi_server):
    """`make(device, start_offset_s, minutes)`: an appointment due now at the device's centre; the schedule
    open all day; everything cancelled and restored afterwards."""
    p = provisioned_asterisk
    made: list[int] = []
    with p.db.write() as session:
        row = session.scalars(sa.select(GovernorSchedule)).one()
        saved = {name: getattr(row, name) for name in ("session_days", "video_start", "video_end")}
        row.session_days, row.video_start, row.video_end = "0,1,2,3,4,5,6", dt.time(0, 0), dt.time(23, 59)
        for stale in session.scalars(sa.select(Appointment).where(Appointment.status == AppointmentStatus.IN_SESSION)):
            stale.status = AppointmentStatus.COMPLETED

    def make(device: str, start_offset: float, minutes: int) -> int:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        with p.db.write() as session:
            for earlier in session.scalars(sa.select(Appointment).where(Appointment.id.in_(made))):
                earlier.status = AppointmentStatus.CANCELLED   # one due appointment at a time
            citizen = booking.find_or_register_citizen(session, "1123456780", "Test Citizen", "+966501234567")
            centre = session.scalars(sa.select(Centre).join(Device).where(Device.sip_user == device)).one()
            appointment = Appointment(
                reference=new_reference("appointment"), checkin_code=new_checkin_code(), citizen=citizen,
                kind=AppointmentKind.VIDEO, slot_start=now + dt.timedelta(seconds=start_offset),
                slot_minutes=minutes, centre=centre)
            session.add(appointment)
            session.flush()
            made.append(appointment.id)
            return appointment.id

    try:
        yield make
    finally:
        with p.db.write() as session:
            for appointment_id in made:
                appointment = session.get(Appointment, appointment_id)
                if appointment.status in booking.ACTIVE or appointment.status is AppointmentStatus.IN_SESSION:
                    appointment.status = AppointmentStatus.CANCELLED
            row = session.scalars(sa.select(GovernorSchedule)).one()
            for name, value in saved.items():
                setattr(row, name, value)


@pytest.fixture(scope="module")
def governor(module_phones, booked):
    return module_phones.start(GOVERNOR)


def reaches_desk(phone, governor, timeout: float = 20) -> float:
    """`phone` dials the governor (100); seconds until the desk has the call established; hangs up."""
    since = time.monotonic()
    phone.dial("100")
    try:
        governor.wait_event("CALL_ESTABLISHED", timeout, since=since,
                            where=lambda e: e.get("direction") == "incoming")
        return time.monotonic() - since
    finally:
        phone.hangup()
        governor.wait_event("CALL_CLOSED", 10, since=since)


# --------------------------------------------------------------------------- a FastAGI flood

# 2,000 connections within ~3 s: from Asterisk's own (allowed) address without the secret, garbage,
# half-open (connect, say nothing), slow senders (a byte every 0.5 s); strangers from other loopback addresses.
FLOOD = {"no_secret": 800, "garbage": 400, "half_open": 300, "slow": 200, "stranger": 300}
HOLD = 8.0   # seconds a flood connection waits for the server to close it
STRANGERS = [f"127.0.0.{n}" for n in range(2, 10)]


async def _one(kind: str, port: int, source: str):
    loop = asyncio.get_running_loop()
    started, received, outcome = loop.time(), bytearray(), "closed"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError as exc:
        return kind, f"not connected: {exc.__class__.__name__}", b"", 0.0
    try:
        async with asyncio.timeout(HOLD):
            if kind in ("no_secret", "stranger"):
                writer.write(agi_headers("route_call", CENTRE, port))
            elif kind == "garbage":
                writer.write(os.urandom(300) + b"\n\n")
            elif kind == "slow":
                writer.write(b"agi_network_script")
            while True:
                try:
                    async with asyncio.timeout(0.5 if kind == "slow" else HOLD):
                        chunk = await reader.read(4096)
                except TimeoutError:
                    writer.write(b"x")   # the slow sender's next byte
                    continue
                if not chunk:
                    break
                received += chunk
                if kind == "no_secret" and b"GET VARIABLE" in chunk:
                    writer.write(b"200 result=1 (a-guessed-secret)\n")
    except TimeoutError:
        outcome = "still open"
    except (ConnectionError, OSError):
        pass   # reset: the server aborted the connection
    finally:
        writer.transport.abort()
    return kind, outcome, bytes(received), loop.time() - started


async def _flood(port: int) -> list[tuple]:
    kinds = [kind for kind, count in FLOOD.items() for _ in range(count)]
    random.Random(7).shuffle(kinds)
    tasks = []
    for n, kind in enumerate(kinds):
        source = STRANGERS[n % len(STRANGERS)] if kind == "stranger" else "127.0.0.1"
        tasks.append(asyncio.create_task(_one(kind, port, source)))
        if n % 200 == 199:
            await asyncio.sleep(0.3)
    return await asyncio.gather(*tasks)


def process_use(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, open file descriptors) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)), len(os.listdir(f"/proc/{pid}/fd"))


def test_fastagi_flood_while_a_booked_call_reaches_the_desk(provisioned_asterisk, agi_server, booked, governor,
                                                            phones):
    p = provisioned_asterisk
    port, pid = p.settings.agi_port, agi_server.proc.pid
    booked(CENTRE, -60, 15)
    phone = phones.start(CENTRE)
    secret = settings_module.agi_secret(p.settings)
    assert agi_call(port, CENTRE, secret=secret).decision == "connect"   # warm: the server's database pool is open
    rss_before, fds_before = process_use(pid)
    results: list = []
    started = time.monotonic()
    flood = threading.Thread(target=lambda: results.extend(asyncio.run(_flood(port))), daemon=True)
    flood.start()
    time.sleep(2.0)   # the flood is in full swing (~1,300 connections opened, the held ones still open)
    rss_peak, fds_peak = process_use(pid)
    to_desk = reaches_desk(phone, governor)
    flood.join(HOLD + 30)
    lasted = time.monotonic() - started
    assert not flood.is_alive()
    outcomes: dict = {}
    for kind, outcome, _received, _seconds in results:
        outcomes.setdefault(kind, {}).setdefault(outcome, 0)
        outcomes[kind][outcome] += 1
    longest = {kind: max(s for k, _o, _r, s in results if k == kind) for kind in FLOOD}
    print(f"FastAGI flood: {len(results)} connections in {lasted:.1f} s (outcomes {outcomes}; longest held "
          + ", ".join(f"{k} {s:.1f} s" for k, s in longest.items()) + ")")
    print(f"the booked call reached the desk {to_desk:.1f} s after dialling, during the flood")
    assert fds_peak > 100, fds_peak   # the call did go through while the server held the flood's connections
    assert len(results) == sum(FLOOD.values())
    # The server closed every connection itself, within its header bound (5 s) and a margin.
    assert all(o == "closed" for _k, o, _r, _s in results), outcomes
    assert max(longest.values()) < 7.5, longest
    # Nothing given away: strangers, garbage, half-open and slow senders heard nothing at all; a caller without
    # the secret was asked for it once and told nothing else (no decision, no TAWASUL_* value).
    for kind, _outcome, received, _seconds in results:
        if kind == "no_secret":
            assert received in (b"", b"GET VARIABLE TAWASUL_AGI_SECRET\n"), received[:200]
        else:
            assert received == b"", (kind, received[:200])
    assert any(r == b"GET VARIABLE TAWASUL_AGI_SECRET\n" for k, _o, r, _s in results if k == "no_secret")
    # The server is up and decides as before; its memory and descriptors are back near where they started.
    decided = agi_call(port, CENTRE, secret=secret)
    assert decided.decision == "connect", decided
    rss_after, fds_after = wait_for(lambda: (use := process_use(pid))[1] <= fds_before + 2 and use, 10,
                                    f"the server's descriptors back near {fds_before} (now {process_use(pid)}, "
                                    f"{os.listdir(f'/proc/{pid}/fd')})")
    print(f"server RSS {rss_before} KiB before, {rss_peak} during, {rss_after} after; "
          f"FDs {fds_before} before, {fds_peak} during, {fds_after} after")
    assert agi_server.proc.poll() is None
    assert rss_after < rss_before + 32 * 1024
    log = agi_server.log_text()
    print("server log lines: " + ", ".join(f"{word}: {log.count(word)}" for word in
                                             ("not an allowed peer", "wrong shared secret", "not an AGI header line",
                                              "no complete header block", "connections already open")))
