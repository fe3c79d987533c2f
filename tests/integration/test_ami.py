"""The shared AMI client against a real Asterisk: login, refusal, timeouts that leak nothing,
reconnect with a resync marker after Asterisk restarts."""
import asyncio

import pytest

from provisioning import runtime as asterisk_runtime
from tawasul.ami import RESYNC, AmiClient, AmiUnavailable, Login, run_actions, succeeded
from tests.asterisk_fixture import make_settings
from tests.live import free_port, run_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_actions_answer_and_a_wrong_secret_is_refused(asterisk):
    async def scenario():
        [settings_reply] = await run_actions(asterisk.settings, asterisk.ami_login("web"), [{"Action": "CoreSettings"}])
        assert succeeded(settings_reply) and settings_reply["AsteriskVersion"].split(".")[0] >= "20"
        started = asyncio.get_running_loop().time()
        with pytest.raises(AmiUnavailable, match="refused the login"):
            await run_actions(asterisk.settings, Login(asterisk.ami_login("web").username, "not-the-secret"),
                              [{"Action": "Ping"}], timeout=10)
        assert asyncio.get_running_loop().time() - started < 5  # told at once, not after the timeout
    run_async(scenario())


def test_a_timed_out_action_is_forgotten(asterisk):
    async def scenario():
        client = AmiClient.for_settings(asterisk.settings, asterisk.ami_login("watch"))
        await client.connect()
        try:
            # WaitEvent answers when any event comes (a phone of another test unregistering, say):
            # a few tries, so one of them outlasts the 0.2 s.
            for _attempt in range(5):
                try:
                    await client.action({"Action": "WaitEvent", "Timeout": "5"}, timeout=0.2)
                except AmiUnavailable as exc:
                    assert "no answer in time" in str(exc)
                    break
            else:
                pytest.fail("WaitEvent was answered every time: the timeout was never reached")
            assert client.pending_actions == 0
            assert succeeded(await client.action({"Action": "Ping"}))
        finally:
            client.close()
    run_async(scenario())


def test_the_client_reconnects_and_asks_for_a_resync_after_asterisk_restarts(tmp_path):
    settings = make_settings(tmp_path / "var", ami_port=free_port(), sip_udp_port=free_port(),
                             sip_tls_port=free_port(), rtp_start=32000, rtp_end=32099)
    runtime = asterisk_runtime.ensure_installed(settings)
    runtime.start()

    async def scenario():
        client = AmiClient.for_settings(settings, runtime.ami_login("watch"), reconnect_seconds=1)
        await client.connect()
        events = client.subscribe(maxsize=100000)
        try:
            await asyncio.to_thread(runtime.stop)
            await asyncio.sleep(0.5)
            assert not client.connected
            with pytest.raises(AmiUnavailable):
                await client.action({"Action": "Ping"})
            await asyncio.to_thread(runtime.start)
            for _ in range(100):
                if client.connected:
                    break
                await asyncio.sleep(0.1)
            assert client.connected
            assert succeeded(await client.action({"Action": "Ping"}))
            seen = []
            while not events.empty():
                seen.append(events.get_nowait().get("Event"))
            assert RESYNC in seen
        finally:
            client.close()

    try:
        run_async(scenario())
    finally:
        runtime.stop()
        runtime.destroy()


def test_a_slow_subscriber_loses_the_oldest_events_not_the_client(asterisk):
    async def scenario():
        client = AmiClient.for_settings(asterisk.settings, asterisk.ami_login("watch"))
        await client.connect()
        slow = client.subscribe(maxsize=3, wanted=lambda e: e.get("Event") == "Reload")
        reloader = AmiClient.for_settings(asterisk.settings, asterisk.ami_login("provision"))
        await reloader.connect()
        try:
            for _ in range(10):
                await reloader.action({"Action": "Reload", "Module": "pbx_config"})  # each emits a Reload event
            await asyncio.sleep(0.3)
            assert slow.qsize() == 3 and client.dropped_events >= 7
        finally:
            client.close()
            reloader.close()
    run_async(scenario())
