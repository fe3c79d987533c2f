"""No decision is a deny, and a fast one: the centre route with the AGI server down or broken."""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import socket
import threading

import pytest

pytestmark = pytest.mark.integration


async def _route_once(settings, secret, exten, timeout):
    from panoramisk import Manager

    loop = asyncio.get_running_loop()
    manager = Manager(loop=loop, host=settings.ami_host, port=settings.ami_port, username=settings.ami_user,
                      secret=secret, ping_delay=3600, reconnect_timeout=3600)
    done: asyncio.Future = loop.create_future()
    applications: list[str] = []

    def on_event(_manager, event):
        channel = event.get("Channel", "")
        if not channel.startswith(f"Local/{exten}@from-centre") or not channel.endswith(";2"):
            return
        if event.get("Event") == "DialBegin":
            applications.append("Dial")
        elif event.get("Event") == "Hangup" and not done.done():
            applications.append(f"Hangup({event.get('Cause')})")
            done.set_result(loop.time())

    manager.register_event("DialBegin", on_event)
    manager.register_event("Hangup", on_event)
    try:
        await asyncio.wait_for(manager.connect(), timeout)
        while not manager.authenticated:
            await asyncio.sleep(0.01)
        started = loop.time()
        await manager.send_action({"Action": "Originate", "Channel": f"Local/{exten}@from-centre",
                                   "Application": "Wait", "Data": "20", "Async": "true"})
        ended = await asyncio.wait_for(done, timeout)
        return ended - started, applications
    finally:
        manager.close()


def route_once(runtime, exten="100", timeout=10.0) -> tuple[float, list[str]]:
    """Run the centre route on a Local channel (AMI Originate): seconds until the route's channel
    hung up, and what happened: "Dial" for a DialBegin, "Hangup(<cause>)" (the AMI user may not
    read dialplan events, so no Newexten)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _route_once(runtime.settings, runtime.ami_secret, exten, timeout)).result()


def assert_denied(applications):
    assert applications == ["Hangup(21)"], applications  # Hangup(21): the deny branch, no Dial


def test_agi_server_down_denies_at_once(provisioned_asterisk):
    messages = provisioned_asterisk.runtime.log_dir / "messages"
    offset = messages.stat().st_size
    seconds, logged = route_once(provisioned_asterisk.runtime)
    with open(messages, errors="replace") as handle:
        handle.seek(offset)
        assert "route_call" in handle.read()  # res_agi's warning: the route did ask the AGI server
    print(f"deny with the AGI server down (connection refused): {seconds:.2f} s")
    assert seconds < 3
    assert_denied(logged)


def test_agi_server_that_hangs_up_denies_at_once(provisioned_asterisk):
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
