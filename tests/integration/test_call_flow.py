"""The dialplan acting on route_call's decision, with real Asterisk, real baresip phones, the real
FastAGI server and the call watcher running:

- governor busy: a centre with a due appointment waits in the private line (music, its own position)
  and is connected when the session ends, in appointment order when two wait;
- slot limit: a session whose slot ends in ~70 s is ended by Asterisk then, after the spoken warning;
- deny + message: a centre with no appointment hears the refusal, presses 1, speaks, and a complaint
  ticket with the WAV recording appears.

Appointments are made directly with the slot times each case needs (the schedule itself is opened all
day, as in test_video_calls); everything is cancelled and every phone stopped afterwards.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import threading
import time

import pytest
import sqlalchemy as sa

from tawasul import booking
from tawasul.ami import AmiClient
from tawasul.callwatch import CallWatcher
from tawasul.models import (Appointment, AppointmentKind, AppointmentStatus, Attachment, Call, Centre,
                            GovernorSchedule, Ticket, TicketKind)
from tawasul.references import new_checkin_code, new_reference
from tests.live import wait_for
from tests.phones import PhoneError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GOVERNOR = "governor-desk-1"
BDR, YNB, KHB, MHD, HNK = "centre-bdr-1", "centre-ynb-1", "centre-khb-1", "centre-mhd-1", "centre-hnk-1"




# --------------------------------------------------------------------------- the watcher and AMI events


class Watching:
    """The call watcher (tawasul.callwatch) on its own thread and loop, and every AMI event it sees."""

    def __init__(self, provisioned):
        self.p = provisioned
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self):
        client = AmiClient.for_settings(self.p.settings, self.p.runtime.ami_login("watch"))
        watcher = CallWatcher(self.p.db, client, state_dir=self.p.settings.state_dir)
        mine = client.subscribe()
        self.stop = asyncio.Event()
        await client.connect()
        task = asyncio.create_task(watcher.run(self.stop))
        self.ready.set()
        try:
            while not self.stop.is_set():
                try:
                    event = await asyncio.wait_for(mine.get(), 0.2)
                except asyncio.TimeoutError:
                    continue
                with self.lock:
                    self.events.append({**dict(event), "_at": time.monotonic()})
        finally:
            await task
            client.close()

    def start(self):
        self.thread.start()
        assert self.ready.wait(15), "the call watcher did not connect"

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    def find(self, name: str, since: float = 0.0, **fields) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e["_at"] >= since and (e.get("Event") == name or e.get("UserEvent") == name)
                    and all(str(e.get(k, "")).startswith(v) for k, v in fields.items())]

    def wait(self, name: str, timeout: float, since: float = 0.0, **fields) -> dict:
        return wait_for(lambda: (self.find(name, since, **fields) or [None])[0], timeout, f"AMI {name} {fields}")


@pytest.fixture(scope="module")
def watching(provisioned_asterisk):
    w = Watching(provisioned_asterisk)
    w.start()
    try:
        yield w
    finally:
        w.close()


# --------------------------------------------------------------------------- appointments


@pytest.fixture(scope="module")
def booked(provisioned_asterisk, agi_server):
    """`make(centre_code, start_offset_s, minutes)` -> appointment id, due now at that centre. The
    schedule is opened all day (the route checks session hours only when nothing is due); every
    appointment made is cancelled and the schedule restored afterwards."""
    p = provisioned_asterisk
    made: list[int] = []
    with p.db.write() as session:
        row = session.scalars(sa.select(GovernorSchedule)).one()
        saved = {name: getattr(row, name) for name in ("session_days", "video_start", "video_end")}
        row.session_days, row.video_start, row.video_end = "0,1,2,3,4,5,6", dt.time(0, 0), dt.time(23, 59)
        # Nothing left in session by another module (the route would answer "wait" to everyone).
        for stale in session.scalars(sa.select(Appointment).where(Appointment.status == AppointmentStatus.IN_SESSION)):
            stale.status = AppointmentStatus.COMPLETED

    def make(code: str, start_offset: float, minutes: int) -> int:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        with p.db.write() as session:
            citizen = booking.find_or_register_citizen(session, "1123456780", "Test Citizen", "+966501234567")
            centre = session.scalars(sa.select(Centre).where(Centre.code == code)).one()
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


def application_of(p, endpoint: str) -> str:
    """The dialplan application the endpoint's channel runs now (AMI CoreShowChannels)."""
    import concurrent.futures

    from tawasul.ami import run_actions

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        [reply] = pool.submit(asyncio.run, run_actions(p.settings, p.runtime.ami_login("web"),
                                                       [{"Action": "CoreShowChannels"}], 10)).result()
    events = reply if isinstance(reply, list) else [reply]
    return next((e.get("Application", "") for e in events if e.get("Event") == "CoreShowChannel"
                 and e.get("Channel", "").startswith(f"PJSIP/{endpoint}-")), "")


def status_of(p, appointment_id) -> AppointmentStatus:
    with p.db.read() as session:
        return session.get(Appointment, appointment_id).status


@pytest.fixture(scope="module")
def verbose_log(provisioned_asterisk):
    """Asterisk's verbose messages (which file each channel plays) in a log file for this module."""
    rt = provisioned_asterisk.runtime
    added = rt.cli("logger add channel tawasul-test-verbose.log notice,warning,error,verbose(4)")
    print(f"logger add channel: {added.strip()}; core set verbose 3: {rt.cli('core set verbose 4').strip()}")
    paths = (rt.log_dir / "tawasul-test-verbose.log", rt.log_dir / "stdout.log")  # the console's copy too
    try:
        yield lambda: "\n".join(path.read_text(errors="replace") for path in paths if path.exists())
    finally:
        rt.cli("core set verbose 0")
        rt.cli("logger remove channel tawasul-test-verbose.log")


def long_tone_phone(factory, device: str):
    """A phone whose microphone tone lasts 150 s: baresip hangs up when its audio file ends (60 s),
    and the slot test's session is longer than that."""
    import subprocess

    from provisioning.phones.baresip import TONE_NAME

    folder = factory.export(device)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(folder / TONE_NAME), "synth", "150",
                    "sine", "440", "vol", "0.3"], check=True, capture_output=True)
    return factory.start(folder)


@pytest.fixture(scope="module")
def governor(module_phones, booked, verbose_log):
    return long_tone_phone(module_phones, GOVERNOR)


def incoming_established(governor, since):
    return governor.wait_event("CALL_ESTABLISHED", 20, since=since, where=lambda e: e.get("direction") == "incoming")


def log_on_failure(p, agi_server):
    return (f"\n--- AGI server:\n{agi_server.log_text()[-2000:]}\n--- Asterisk:\n{p.runtime.log_tail(60)}")


# --------------------------------------------------------------------------- tests


def test_busy_governor_line_in_appointment_order(provisioned_asterisk, agi_server, watching, booked, governor,
                                                 module_phones, verbose_log):
    p = provisioned_asterisk
    # BDR's session (long slot); then YNB (later slot) and KHB (earlier slot) call while it lasts.
    bdr_id = booked("BDR", -60, 15)
    ynb_id = booked("YNB", 60, 10)     # slot ends in ~11 min
    khb_id = booked("KHB", -120, 5)    # slot ends in ~3 min: earlier in appointment order
    bdr, ynb, khb = (module_phones.start(name) for name in (BDR, YNB, KHB))
    since = time.monotonic()
    bdr.dial("100")
    try:
        bdr.wait_event("CALL_ESTABLISHED", 20, since=since)
        incoming_established(governor, since)
    except PhoneError as exc:
        raise AssertionError(f"{exc}{log_on_failure(p, agi_server)}") from None
    try:
        wait_for(lambda: status_of(p, bdr_id) is AppointmentStatus.IN_SESSION, 10, "BDR in session (watcher)")
    except AssertionError:
        with p.db.read() as session:
            rows = [(c.uniqueid, c.decision, c.reason, c.appointment_id, c.answer_at) for c in session.scalars(sa.select(Call))][-3:]
        raise AssertionError(f"{status_of(p, bdr_id)} {rows} {[e.get('Event') for e in watching.events][-40:]}"
                             f"{log_on_failure(p, agi_server)}")

    # YNB first, then KHB: both wait; KHB's earlier slot puts it ahead of YNB in the line.
    ynb.dial("100")
    ynb_join = watching.wait("QueueCallerJoin", 20, since, Channel=f"PJSIP/{YNB}-", Queue="governor")
    khb.dial("100")
    khb_join = watching.wait("QueueCallerJoin", 20, since, Channel=f"PJSIP/{KHB}-", Queue="governor")
    print(f"joined: YNB at position {ynb_join['Position']}, then KHB at position {khb_join['Position']}")
    assert (ynb_join["Position"], khb_join["Position"]) == ("1", "1")
    decisions = {e["Endpoint"]: e["Decision"] for e in watching.find("TawasulDecision", since)}
    assert decisions == {BDR: "connect", YNB: "wait", KHB: "wait"}, decisions
    wait_for(lambda: status_of(p, ynb_id) is AppointmentStatus.WAITING, 10, "YNB waiting (watcher)")
    # Music, only to the waiting callers; no waiting caller reached the desk or anyone else.
    for name in (YNB, KHB):
        moh = watching.wait("MusicOnHoldStart", 15, since, Channel=f"PJSIP/{name}-")
        assert moh["Class"] == "tawasul"
    queue = p.runtime.cli("queue show governor")
    print(queue)
    assert queue.index(KHB) < queue.index(YNB)
    assert len(governor.incoming_calls(since)) == 1
    # Each waiting caller hears its own position: KHB is next, YNB is number 2 (digits/2).
    # Each waiting caller hears its own position (to it alone): KHB is next, YNB is number 2, said
    # with digits/2 (Asterisk's number sayer has no Arabic rules and says so; the Arabic digit files
    # are Tawasul's, linked as ar/digits/N).
    said = wait_for(lambda: [line for line in verbose_log().splitlines()
                             if "tawasul/you-are" in line or "ast_get_number_str" in line], 40,
                    "a position announcement")
    print("\n".join(said))
    # The session ends: KHB (earlier slot) is connected, YNB still waits.
    ended = time.monotonic()
    mark = governor.log_mark()
    bdr.hangup()
    connect = watching.wait("AgentConnect", 20, ended)
    assert connect["Channel"].startswith(f"PJSIP/{KHB}-"), connect
    incoming_established(governor, ended)
    assert not watching.find("QueueCallerLeave", ended, Channel=f"PJSIP/{YNB}-")
    wait_for(lambda: status_of(p, khb_id) is AppointmentStatus.IN_SESSION, 10, "KHB in session")
    wait_for(lambda: status_of(p, bdr_id) is AppointmentStatus.COMPLETED, 10, "BDR completed")
    print(f"the desk decodes KHB's video through the line: {governor.wait_video(15, since=mark)}")
    # KHB's session ends: YNB is next.
    ended = time.monotonic()
    khb.hangup()
    connect = watching.wait("AgentConnect", 20, ended)
    assert connect["Channel"].startswith(f"PJSIP/{YNB}-"), connect
    incoming_established(governor, ended)
    wait_for(lambda: status_of(p, ynb_id) is AppointmentStatus.IN_SESSION, 10, "YNB in session")
    ynb.hangup()
    wait_for(lambda: status_of(p, ynb_id) is AppointmentStatus.COMPLETED, 10, "YNB completed")
    for phone in (bdr, ynb, khb):
        phone.stop()


def test_session_ends_with_its_slot_after_the_warning(provisioned_asterisk, agi_server, watching, booked, governor,
                                                     module_phones, verbose_log):
    p = provisioned_asterisk
    appointment_id = booked("MHD", 10, 1)   # the slot ends ~70 s from now
    mhd = long_tone_phone(module_phones, MHD)
    try:
        since = time.monotonic()
        mhd.dial("100")
        mhd.wait_event("CALL_ESTABLISHED", 20, since=since)
        incoming_established(governor, since)
        answered = time.monotonic()
        closed = mhd.wait_event("CALL_CLOSED", 90, since=answered)
        lasted = closed["_at"] - since   # the slot had ~69 s left when dialled
        verbose = verbose_log()
    finally:
        mhd.stop()
    warnings = [line for line in verbose.splitlines() if "session-ending" in line]
    print(f"session lasted {lasted:.1f} s; warning lines:\n" + "\n".join(warnings))
    assert 60 <= lasted <= 78, lasted
    assert any(GOVERNOR in line for line in warnings) and any(MHD in line for line in warnings), warnings
    with p.db.read() as session:
        call = session.scalars(sa.select(Call).where(Call.appointment_id == appointment_id)).one()
        assert call.answer_at is not None
    wait_for(lambda: _call_of(p, appointment_id).end_at, 10, "the call record's end")
    call = _call_of(p, appointment_id)
    print(f"call record: hangup_by={call.hangup_by} outcome={call.outcome}")
    assert call.hangup_by == "system" and call.outcome == "answered"
    assert status_of(p, appointment_id) is AppointmentStatus.COMPLETED


def _call_of(p, appointment_id) -> Call:
    with p.db.read() as session:
        return session.scalars(sa.select(Call).where(Call.appointment_id == appointment_id)).one()


def test_refused_caller_leaves_a_message_that_becomes_a_ticket(provisioned_asterisk, agi_server, watching, booked,
                                                               phones):
    p = provisioned_asterisk
    hnk = phones.start(HNK)   # no appointment at Al-Hanakiyah
    since = time.monotonic()
    hnk.dial("100")
    decision = watching.wait("TawasulDecision", 20, since, Endpoint=HNK)
    assert (decision["Decision"], decision["Reason"]) == ("deny", "no_appointment")
    # The refusal plays first (Playback), then the offer waits for a key (Read): press 1.
    wait_for(lambda: application_of(p, HNK) == "Read", 30, "the offer (Read)", interval=0.3)
    hnk.command("sndcode", "1")
    wait_for(lambda: application_of(p, HNK) == "Record", 30, "the recording (Record)", interval=0.3)
    time.sleep(4)   # the phone's microphone is a tone: it "speaks"
    hnk.hangup()
    message = watching.wait("TawasulMessage", 15, since, Endpoint=HNK)
    print(f"TawasulMessage: {message}")
    assert message["Reason"] == "no_appointment" and message["Status"] in ("HANGUP", "")

    def ticket():
        with p.db.read() as session:
            found = session.scalars(sa.select(Attachment).where(
                Attachment.original_name == f"message-{message['File'].rsplit('/', 1)[1]}")).first()
            return found and (found.ticket_id, found.content_type, found.size, found.stored_name)

    ticket_id, content_type, size, stored = wait_for(ticket, 15, "the message's ticket")
    with p.db.read() as session:
        filed = session.get(Ticket, ticket_id)
        print(f"ticket {filed.reference}: {filed.subject} ({filed.kind.value}, {filed.department.code})")
        assert filed.kind is TicketKind.COMPLAINT and "Al-Hanakiyah" in filed.subject
    data = (p.settings.state_dir / "attachments" / stored).read_bytes()
    assert content_type == "audio/wav" and data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert size > 16000 * 2, size   # seconds of 8 kHz, 16-bit sound
    assert not (p.settings.state_dir / "asterisk" / "spool" / "messages" / message["File"].rsplit("/", 1)[1]).exists()


def test_hung_fastagi_server_refuses_within_seconds(provisioned_asterisk, agi_server, watching, booked, governor,
                                                    phones):
    """A FastAGI server that is alive, accepts connections and answers nothing (SIGSTOP) holds no caller:
    a booked centre hears the refusal within seconds (the dialplan's bound on the decision), and the desk
    never rings."""
    p = provisioned_asterisk
    booked("BDR", -60, 15)   # due now: with a working server this call would reach the desk
    bdr = phones.start(BDR)
    os.kill(agi_server.proc.pid, signal.SIGSTOP)
    try:
        since = time.monotonic()
        bdr.dial("100")
        try:
            answered = bdr.wait_event("CALL_ESTABLISHED", 15, since=since)  # the refusal answers the call
        except PhoneError as exc:
            raise AssertionError(f"no refusal within 15 s: {exc}{log_on_failure(p, agi_server)}") from None
        decision = watching.wait("TawasulDecision", 10, since, Endpoint=BDR)
        wait_for(lambda: application_of(p, BDR) in ("Playback", "Read"), 10, "the spoken refusal", interval=0.2)
    finally:
        os.kill(agi_server.proc.pid, signal.SIGCONT)
    heard = answered["_at"] - since
    print(f"refusal heard {heard:.2f} s after dialling, with the FastAGI server stopped; decision {decision}")
    assert heard < 5, heard
    assert (decision["Decision"], decision["Reason"]) == ("", "")  # no decision: the refusal
    bdr.hangup()
    bdr.wait_event("CALL_CLOSED", 10, since=since)
    assert governor.incoming_calls(since) == []


def test_a_booking_code_keyed_after_the_first_seconds_still_connects(provisioned_asterisk, agi_server, watching,
                                                                     booked, governor, phones):
    """The dialplan's short bound on the decision is extended by route_call for each code prompt: a
    citizen who keys the code well after it still reaches the governor."""
    p = provisioned_asterisk
    appointment_id = booked("KHB", -60, 15)
    with p.db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "KHB")).one()
        centre.require_code = True
        code = session.get(Appointment, appointment_id).checkin_code
    try:
        khb = phones.start(KHB)
        since = time.monotonic()
        khb.dial("100")
        wait_for(lambda: application_of(p, KHB) == "AGI", 10, "the code prompt (AGI)", interval=0.2)
        time.sleep(6)   # twice the bound on an unextended decision
        for digit in code:
            khb.command("sndcode", digit)
            time.sleep(0.3)
        try:
            incoming_established(governor, since)
        except PhoneError as exc:
            raise AssertionError(f"{exc}{log_on_failure(p, agi_server)}") from None
        decision = watching.wait("TawasulDecision", 5, since, Endpoint=KHB)
        assert decision["Decision"] == "connect" and decision["Appointment"] == str(appointment_id)
        khb.hangup()
        with p.db.read() as session:
            assert session.get(Appointment, appointment_id).code_failures == 0
    finally:
        with p.db.write() as session:
            session.scalars(sa.select(Centre).where(Centre.code == "KHB")).one().require_code = False
