"""`tawasul up`, as `make run` runs it: every service a real process; SIGTERM leaves nothing behind."""
import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from provisioning import runtime as asterisk_runtime
from tawasul import outbox
from tawasul.db import Database
from tests.asterisk_fixture import assert_stopped_clean, instance_pids, make_settings
from tests.live import free_port, tawasul, wait_for
from tests.sms_gateway import FakeGateway

pytestmark = pytest.mark.integration


def start_up(state, ports):
    env = {"TAWASUL_STATE_DIR": str(state), **{f"TAWASUL_{k.upper()}": str(v) for k, v in ports.items()}}
    process = tawasul(["--demo", "up"], env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops it" in line:
            for _ in range(8):
                lines.append(process.stdout.readline())
            return process, "".join(lines)
    process.kill()
    raise AssertionError("tawasul up did not get ready:\n" + "".join(lines))


def test_up_runs_everything_and_sigterm_leaves_nothing_behind(service_tmp):
    state = service_tmp / "var"
    ports = {"web_port": free_port(), "agi_port": free_port(), "ami_port": free_port(),
             "sip_udp_port": free_port(), "sip_tls_port": free_port(), "rtp_start": 31000, "rtp_end": 31999}
    settings = make_settings(state, **ports)
    runtime = asterisk_runtime.ensure_installed(settings)

    process, banner = start_up(state, ports)
    try:
        assert "Demo region seeded" in banner and "governor_office" in banner
        assert f"http://127.0.0.1:{ports['web_port']}/" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['web_port']}/healthz") as response:
            assert json.load(response) == {"status": "ok", "database": "ok"}
        assert "Asterisk 22" in runtime.cli("core show version") or "Asterisk 2" in runtime.cli("core show version")
        assert instance_pids(runtime)
        # The demo phones' ready-to-run profiles are where the banner says.
        assert f"phone profiles {state.resolve() / 'phones'}" in banner
        for device in ("governor-desk-1", "centre-bdr-1"):
            assert (state / "phones" / device / "accounts").stat().st_mode & 0o077 == 0
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert_stopped_clean(runtime)
    for port in (ports["web_port"], ports["agi_port"]):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)

    assert "SMS            no gateway set" in banner  # demo: no SMS sender unless a gateway is set

    # A second run keeps the data: no new accounts, the same database. With a gateway set, the SMS
    # sender runs too and sends what the outbox holds.
    database = Database(settings.db_url)
    with database.write() as session:
        outbox.queue(session, "+966551234567", "تواصل: تجربة", key="up-test")
    database.dispose()
    with FakeGateway() as gateway:
        process, banner = start_up(state, {**ports, "sms_gateway_url": gateway.url})
        try:
            assert "Demo region seeded" not in banner and f"SMS            {gateway.url}" in banner
            wait_for(lambda: "up-test" in gateway.delivered, 30, "the queued SMS at the gateway")
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(30) == 0
    assert_stopped_clean(runtime)
    runtime.destroy()


def test_up_refuses_the_default_secret_outside_demo_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tawasul", "--state-dir", str(tmp_path), "up"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "TAWASUL_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
