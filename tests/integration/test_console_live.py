"""The governor's console against a real Asterisk: a real baresip centre phone registering shows on
the console's server-sent event stream within 2 seconds, and its unregistering too.

The chain under test is the production one: Asterisk -> AMI (tawasul.ami) -> the live state
service (tawasul.livestate, as run by `tawasul call watch`) -> the `live_state` row in the
fixture's database -> /console/stream of the Flask app over that database."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import queue
import re
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tawasul import references, users
from tawasul.ami import AmiClient
from tawasul.livestate import LiveStateService
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Centre,
    Citizen,
    Role,
)
from tawasul.validation import make_national_id
from tests.conftest import csrf_token
from tests.phones import phones  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
CENTRE, PHONE = "KHB", "centre-khb-1"  # a centre no other test's phone uses


class LiveService:
    """The live state service on an event loop of its own thread, as in the call watcher."""

    def __init__(self, provisioned):
        self.p = provisioned
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)

    async def _run(self):
        client = AmiClient.for_settings(self.p.settings, self.p.runtime.ami_login("watch"))
        service = LiveStateService(self.p.db, client)
        self.stop = asyncio.Event()
        await client.connect()
        self.ready.set()
        try:
            await service.run(self.stop)
        finally:
            client.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(15), "the live state service did not log in to AMI"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def stream_reader(response, out: queue.Queue):
    buffer = ""
    try:
        for chunk in response.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                if block.startswith("event: state"):
                    out.put((time.monotonic(), json.loads(re.search(r"^data: (.*)$", block, re.MULTILINE).group(1))))
    except Exception as exc:  # noqa: BLE001 - the stream closed under us at the end
        out.put((time.monotonic(), {"error": repr(exc)}))


def wait_for(events: queue.Queue, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            at, state = events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if "sessions" in state and predicate(state):
            return at, state
    raise AssertionError("the stream did not show the change in time")


@contextlib.contextmanager
def checked_in_at_centre(p, username: str, id_digits: str, name: str, mobile: str, slot_start: dt.datetime,
                         **appointment):
    """A governor's-office account (yields its password) and a checked-in video appointment at
    CENTRE (yields its id); the appointment and its citizen are removed afterwards: the slot they
    hold is one another module may book (test_video_calls books the running slot)."""
    with p.db.write() as session:
        _user, password = users.create_user(session, username, Role.GOVERNOR_OFFICE, "Governor's office")
        centre = session.scalars(sa.select(Centre).where(Centre.code == CENTRE)).one()
        citizen = Citizen(national_id=make_national_id("1", id_digits), name=name, mobile=mobile)
        booked = Appointment(
            reference=references.new_reference("appointment"), checkin_code="4321", citizen=citizen,
            kind=AppointmentKind.VIDEO, centre=centre, slot_minutes=15, status=AppointmentStatus.CHECKED_IN,
            slot_start=slot_start, **appointment)
        session.add(booked)
        session.flush()
        appointment_id, citizen_id = booked.id, citizen.id
    try:
        yield password, appointment_id
    finally:
        with p.db.write() as session:
            session.execute(sa.delete(Appointment).where(Appointment.id == appointment_id))
            session.execute(sa.delete(Citizen).where(Citizen.id == citizen_id))


def test_a_centre_phone_registering_shows_on_the_console_stream(provisioned_asterisk, phones):  # noqa: F811
    from web import create_app

    p = provisioned_asterisk
    with checked_in_at_centre(p, "console_it", "56565656", "نورة سعد", "+966551112233",
                              dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)) as (password, appointment_id):
        app = create_app({"TAWASUL_SETTINGS": dataclasses.replace(p.settings, demo=True), "TESTING": True,
                          "CONSOLE_STREAM_SECONDS": 12})  # the stream ends by itself after the test
        client = app.test_client()
        client.post("/login", data={"csrf_token": csrf_token(client), "username": "console_it", "password": password})
        events: queue.Queue = queue.Queue()
        with LiveService(p):
            response = client.get("/console/stream", buffered=False)
            assert response.status_code == 200
            reader = threading.Thread(target=stream_reader, args=(response, events), daemon=True)
            reader.start()

            def mine(state):
                return next(s for s in state["sessions"] if s["id"] == appointment_id)

            wait_for(events, lambda s: s["ami"] and not mine(s)["registered"], 10)  # after the resync
            started_at = time.monotonic()
            phone = phones.start(PHONE)  # returns once baresip has reported REGISTER_OK
            registered_at = time.monotonic()
            shown_at, state = wait_for(events, lambda s: mine(s)["registered"], 5)
            delay = shown_at - registered_at
            print(f"registration shown on the console stream {delay * 1000:.0f} ms after REGISTER_OK was seen "
                  f"({(shown_at - started_at) * 1000:.0f} ms after starting the phone)")
            assert delay < 2.0
            assert mine(state)["phase"] == "checked_in"

            phone.stop()  # baresip unregisters as it quits
            stopped_at = time.monotonic()
            shown_at, _state = wait_for(events, lambda s: not mine(s)["registered"], 5)
            print(f"unregistration shown {(shown_at - stopped_at) * 1000:.0f} ms after the phone stopped")
            assert shown_at - stopped_at < 2.0
            reader.join(15)
            response.close()
        app.extensions["tawasul.db"].dispose()


def test_asterisk_restarted_during_the_day(provisioned_asterisk, phones, agi_server, tmp_path):  # noqa: F811
    """Asterisk restarts with a centre phone registered and a call under way: the real call
    watcher logs in again, the console shows Asterisk's real state within 10 seconds of it being
    up, and the cut call keeps exactly one record, closed."""
    from provisioning.apply import load as load_rows
    from tawasul.models import Call
    from tawasul.settings import as_environ
    from tests.live import stop, tawasul, wait_for as poll
    from web import create_app

    p = provisioned_asterisk
    with checked_in_at_centre(p, "console_restart", "45454545", "فهد سالم", "+966551119999",
                              _not_due_today(), seat=95) as (password, appointment_id):
        env = {**as_environ(p.settings), "TAWASUL_DEMO": "1"}
        with open(tmp_path / "watch.log", "ab") as log:
            watcher = tawasul(["call", "watch"], env, stdout=log, stderr=log)
        app = create_app({"TAWASUL_SETTINGS": dataclasses.replace(p.settings, demo=True), "TESTING": True,
                          "CONSOLE_STREAM_SECONDS": 30})  # ends by itself after the test
        client = app.test_client()
        client.post("/login", data={"csrf_token": csrf_token(client), "username": "console_restart", "password": password})
        events: queue.Queue = queue.Queue()
        try:
            response = client.get("/console/stream", buffered=False)
            reader = threading.Thread(target=stream_reader, args=(response, events), daemon=True)
            reader.start()

            def mine(state):
                return next(s for s in state["sessions"] if s["id"] == appointment_id)

            phone = phones.start(PHONE)
            wait_for(events, lambda s: s["ami"] and mine(s)["registered"], 15)
            # A call under way: the phone asks for the governor, is refused (nothing due now) and hears why.
            since = time.monotonic()
            phone.dial("100")
            phone.wait_event("CALL_ESTABLISHED", 15, since=since)
            linkedid = poll(lambda: _open_call(p.db, Call), 10, "the call watcher's record of the call")

            p.runtime.stop()
            wait_for(events, lambda s: not s["ami"], 15)  # the console says Asterisk is down
            p.runtime.start(timeout=60, rows=load_rows(p.settings, p.db))
            up_at = time.monotonic()

            def real_registration() -> bool:
                return PHONE in p.runtime.cli("pjsip show contacts")

            # Within 10 s the console shows Asterisk up and the phone as Asterisk itself has it.
            shown_at, state = wait_for(events, lambda s: s["ami"] and mine(s)["registered"] == real_registration(), 10)
            print(f"console right again {shown_at - up_at:.1f} s after Asterisk was up "
                  f"(phone {'re-registered' if mine(state)['registered'] else 'not registered yet'})")
            # The cut call: one record, closed by the watcher's reconcile after it logged in again.
            def closed():
                with p.db.read() as session:
                    return session.scalars(sa.select(Call).where(Call.uniqueid == linkedid)).one().end_at

            poll(closed, 10, "the cut call closed")
            with p.db.read() as session:
                assert session.scalar(sa.select(sa.func.count(Call.id)).where(Call.uniqueid == linkedid)) == 1
            reader.join(35)
            response.close()
        finally:
            stop(watcher)
            app.extensions["tawasul.db"].dispose()


def _not_due_today() -> dt.datetime:
    """A slot today (local time) but not due now: 20 minutes ahead, or behind near midnight, so a
    call from its centre is refused (too early or too late) and hears why, which takes a while."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    local = now.astimezone(ZoneInfo("Asia/Riyadh"))
    ahead = now + dt.timedelta(minutes=20)
    return ahead if ahead.astimezone(local.tzinfo).date() == local.date() else now - dt.timedelta(minutes=20)


def _open_call(db, Call) -> str | None:
    """The linkedid of the call record still open (no end yet) from this centre's phone, if any."""
    with db.read() as session:
        call = session.scalars(sa.select(Call).where(Call.end_at.is_(None), Call.channel.like(f"PJSIP/{PHONE}-%"))
                               .order_by(Call.id.desc())).first()
        return call.uniqueid if call else None
