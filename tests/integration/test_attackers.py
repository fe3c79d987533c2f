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
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                data, sender = self.udp.recvfrom(65535)
            except (TimeoutError, socket.timeout):
                continue
            if sender not in self.links:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                self.links[sender] = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
                threading.Thread(target=self._back, args=(sender, self.links[sender]), daemon=True).start()
            self.links[sender].sendall(data)

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
        uri = f"sip:127.0.0.1:{port};transport=tls" if method == "REGISTER" else f"sip:{user}@127.0.0.1:{port};transport=tls"
        body = (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\nm=audio 9 RTP/SAVP 0\r\n"
                if method == "INVITE" else "")
        lines = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/TLS {host}:{local};rport;branch=z9hG4bK{uuid.uuid4().hex[:16]}",
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
            print(f"svwar -m {method} {user} over TLS: exit {run.returncode}: "
                  + " | ".join(line for line in run.output.splitlines() if "Bad user" in line or "found" in line))
            assert "SIP/2.0 401" in run.output, run.output  # it did reach Asterisk through the relay
            assert "' exists" not in run.output and "probably exists" not in run.output, run.output
            assert "found nothing" in run.output, run.output
    print(f"svwar: {len(METHODS) * (1 + len(USERS))} runs in {time.monotonic() - started:.1f} s")
    # Every answer, for any user and method, is the same challenge; and it names no version.
    for method in METHODS:
        shapes = {user: shape(ask_tls(p, method, user)) for user in USERS}
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
