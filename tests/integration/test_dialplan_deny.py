"""No decision is a deny, and a fast one: the centre route with the AGI server down or broken."""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import re
import socket
import threading

import pytest

from tawasul.ami import AmiClient
from tests.phones import start_agi_server, stop_agi_server

pytestmark = pytest.mark.integration


async def _route_once(settings, logins, exten, timeout):
    """Originate the centre route on a Local channel; (seconds until the route had its decision,
    what happened): "Decision(<decision>)" when the dialplan reports it, "Dial" for a DialBegin,
    "Hangup(<cause>)" when the route's channel ends (after its spoken refusal)."""
    client = AmiClient.for_settings(settings, logins["watch"])  # sees the events
    await client.connect(timeout)
    events = client.subscribe()
    caller = AmiClient.for_settings(settings, logins["web"])  # may originate
    await caller.connect(timeout)
    loop = asyncio.get_running_loop()
    happened, decided_at = [], None
    try:
        started = loop.time()
        deadline = started + timeout + 45  # the spoken refusal, the offer and the goodbye take ~30 s
        await caller.action({"Action": "Originate", "Channel": f"Local/{exten}@from-centre",
                             "Application": "Wait", "Data": "60", "Async": "true"})
        while True:
            event = await asyncio.wait_for(events.get(), max(0.1, deadline - loop.time()))
            channel = event.get("Channel", "")
            if not channel.startswith(f"Local/{exten}@from-centre") or not channel.endswith(";2"):
                continue
            if event.get("UserEvent") == "TawasulDecision":
                decided_at = loop.time()
                happened.append(f"Decision({event.get('Decision', '')})")
            elif event.get("Event") == "DialBegin":
                happened.append("Dial")
            elif event.get("Event") == "Hangup":
                happened.append(f"Hangup({event.get('Cause')})")
                return (decided_at or loop.time()) - started, happened
    finally:
        client.close()
        caller.close()


def route_once(runtime, exten="100", timeout=10.0) -> tuple[float, list[str]]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _route_once(runtime.settings, {u: runtime.ami_login(u) for u in ("watch", "web")}, exten, timeout)).result()


def assert_denied(happened):
    # No decision, no Dial; the deny branch speaks its refusal, offers a message (nobody presses 1
    # here) and hangs up with cause 21.
    assert happened == ["Decision()", "Hangup(21)"], happened


@pytest.fixture
def agi_down(agi_server):
    """The session's FastAGI server stopped for one test, then started again."""
    stop_agi_server(agi_server)
    yield
    agi_server.proc = start_agi_server(agi_server.settings, agi_server.log_path).proc


def test_agi_server_down_denies_at_once(provisioned_asterisk, agi_down):
    messages = provisioned_asterisk.runtime.log_dir / "messages"
    offset = messages.stat().st_size
    seconds, logged = route_once(provisioned_asterisk.runtime)
    with open(messages, errors="replace") as handle:
        handle.seek(offset)
        assert "route_call" in handle.read()  # res_agi's warning: the route did ask the AGI server
    print(f"deny with the AGI server down (connection refused): {seconds:.2f} s")
    assert seconds < 3
    assert_denied(logged)


def test_agi_server_that_hangs_up_denies_at_once(provisioned_asterisk, agi_down):
    settings = provisioned_asterisk.settings
    server = socket.create_server((settings.agi_host, settings.agi_port))
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()  # accepts, then drops the connection: no decision

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        seconds, logged = route_once(provisioned_asterisk.runtime)
    finally:
        stop.set()
        thread.join()
        server.close()
    print(f"deny with an AGI server that drops the connection: {seconds:.2f} s")
    assert seconds < 3
    assert_denied(logged)


def test_centre_cannot_dial_other_numbers(provisioned_asterisk):
    runtime = provisioned_asterisk.runtime
    for number in ("centre-bdr-1", "governor-desk-1", "0501234567", "+966501234567", "101"):
        out = runtime.cli(f"dialplan show {number}@from-centre")
        assert re.search(r"Hangup\(21\)", out), (number, out)
        assert "Dial(" not in out and "AGI(" not in out


def test_agi_server_without_the_dialplans_secret_denies_at_once(provisioned_asterisk, agi_down, tmp_path):
    """A FastAGI server whose secret is not the dialplan's (another state folder's) decides nothing: the
    route is refused at once, as with no server at all."""
    settings = dataclasses.replace(provisioned_asterisk.settings, state_dir=tmp_path / "elsewhere",
                                   database_url=provisioned_asterisk.settings.db_url)
    server = start_agi_server(settings, tmp_path / "agi.log")
    try:
        seconds, logged = route_once(provisioned_asterisk.runtime)
    finally:
        stop_agi_server(server)
    print(f"deny with a FastAGI server that does not share the dialplan's secret: {seconds:.2f} s")
    assert "wrong shared secret" in server.log_text()
    assert seconds < 3
    assert_denied(logged)
