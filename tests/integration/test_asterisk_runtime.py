"""The local Asterisk runtime against a real Asterisk (the `asterisk` session fixture)."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from provisioning import runtime as asterisk_runtime
from tawasul.ami import Login
from tests.live import free_port
from tests.asterisk_fixture import (
    ami_call,
    assert_stopped_clean,
    instance_pids,
    make_settings,
)

pytestmark = pytest.mark.integration

OTHER_PORTS = {
    "ami_port": free_port(),
    "sip_udp_port": free_port(),
    "sip_tls_port": free_port(),
    "agi_port": free_port(),
    "rtp_start": 31000,
    "rtp_end": 31999,
}


def test_core_show_version_is_20_or_newer(asterisk):
    out = asterisk.cli("core show version")
    major = int(re.search(r"Asterisk (\d+)\.", out).group(1))
    assert major >= 20


def test_status_reports_running_instance(asterisk):
    status = asterisk.status()
    assert status.running and status.pid == asterisk.pid()
    assert status.version.startswith("Asterisk ")
    assert status.uptime_seconds is not None and status.uptime_seconds >= 0


def test_state_dir_links_to_the_instance(asterisk):
    link = asterisk.settings.state_dir / "asterisk"
    assert link.is_symlink() and link.resolve() == asterisk.host_dir
    assert (link / "etc" / "manager.conf").stat().st_mode & 0o777 == 0o640  # Asterisk reads it through its group
    assert (link / "log" / "messages").is_file()


@pytest.mark.parametrize("module", ["chan_sip", "app_chanspy", "app_mixmonitor", "app_monitor", "app_system", "func_shell"])
def test_forbidden_modules_are_not_loaded(asterisk, module):
    out = asterisk.cli(f"module show like {module}")
    assert "0 modules loaded" in out
    assert f"{module}.so" not in out


@pytest.mark.parametrize(
    "module",
    ["chan_pjsip.so", "res_pjsip.so", "res_rtp_asterisk.so", "res_srtp.so", "res_agi.so", "app_dial.so",
     "app_echo.so", "pbx_config.so", "format_vp8.so", "res_security_log.so"],
)
def test_needed_modules_are_running(asterisk, module):
    out = asterisk.cli(f"module show like {module.removesuffix('.so')}")
    assert re.search(rf"(?m)^{re.escape(module)}\s.*\sRunning\s", out), out


def test_pjsip_transport_and_dialplan_loaded(asterisk):
    transports = asterisk.cli("pjsip show transports")
    assert f"127.0.0.1:{asterisk.settings.sip_tls_port}" in transports and " udp " not in transports
    assert "Echo()" in asterisk.cli("dialplan show echo@tawasul-internal")


def test_ami_login_with_the_secret(asterisk):
    actions = [{"Action": "Ping"}, {"Action": "CoreSettings"}]
    ok, (ping, settings) = ami_call(asterisk.settings, asterisk.ami_login("web"), actions)
    assert ok
    assert ping.success and ping["Ping"] == "Pong"
    assert settings["AsteriskVersion"]


def test_ami_least_privilege(asterisk):
    actions = [
        {"Action": "Reload", "Module": "pbx_config"},  # dialplan reload
        {"Action": "ModuleLoad", "LoadType": "reload", "Module": "res_pjsip.so"},
        {"Action": "Command", "Command": "core show version"},
        {"Action": "ModuleLoad", "LoadType": "load", "Module": "app_chanspy.so"},
    ]
    ok, (reload_dialplan, reload_pjsip, command, chanspy) = ami_call(asterisk.settings, asterisk.ami_login("provision"),
                                                                     actions)
    assert ok and reload_dialplan.success and reload_pjsip.success
    assert not command.success and "Permission denied" in command["Message"]
    assert not chanspy.success  # its file is not there to load
    assert "0 modules loaded" in asterisk.cli("module show like app_chanspy")


# A module that is on disk, harmless, and never loaded by Tawasul: what a ModuleLoad would bring in.
UNLOADED = "res_manager_presencestate"


@pytest.mark.parametrize("user", ["web", "watch"])
def test_the_web_and_the_call_watcher_cannot_load_modules_or_run_commands(asterisk, user):
    assert "0 modules loaded" in asterisk.cli(f"module show like {UNLOADED}")
    refused = [
        {"Action": "ModuleLoad", "LoadType": "load", "Module": f"{UNLOADED}.so"},
        {"Action": "Command", "Command": f"module load {UNLOADED}.so"},
        {"Action": "Reload", "Module": "pbx_config"},
        {"Action": "DBPut", "Family": "tawasul/auth", "Key": "governor-console", "Val": "x"},
        {"Action": "GetConfig", "Filename": "manager.conf"},
    ]
    allowed = [{"Action": "CoreShowChannels"}, {"Action": "CoreStatus"}]
    ok, replies = ami_call(asterisk.settings, asterisk.ami_login(user), refused + allowed)
    assert ok
    for action, reply in zip(refused, replies):
        assert not reply.success and "Permission denied" in reply["Message"], action
    for reply in replies[len(refused):]:
        assert (reply[0] if isinstance(reply, list) else reply).success
    assert "0 modules loaded" in asterisk.cli(f"module show like {UNLOADED}")


def test_ami_login_fails_with_a_wrong_secret(asterisk):
    user, secret = asterisk.ami_login("web")
    ok, responses = ami_call(asterisk.settings, Login(user, "wrong-" + secret), [{"Action": "Ping"}])
    assert not ok and responses == []
    deadline = time.monotonic() + 5
    while "InvalidPassword" not in (asterisk.log_dir / "security").read_text():
        assert time.monotonic() < deadline, "no security event for the failed AMI login"
        time.sleep(0.1)


def test_start_twice_is_refused(asterisk):
    with pytest.raises(asterisk_runtime.AsteriskRuntimeError, match="already runs"):
        asterisk.start()


def test_two_instances_side_by_side_under_a_supervisor(asterisk, tmp_path):
    """A second state folder runs beside the fixture's, started the way `tawasul up` does."""
    second = asterisk_runtime.ensure_installed(make_settings(tmp_path / "second", **OTHER_PORTS))
    assert second.instance_id != asterisk.instance_id
    second.render_and_write()
    proc = subprocess.Popen(second.popen_args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        second.wait_booted(proc, timeout=60)
        assert proc.pid == second.pid()  # the child *is* Asterisk
        assert f"127.0.0.1:{asterisk.settings.sip_tls_port}" in asterisk.cli("pjsip show transports")
        assert f":{OTHER_PORTS['sip_tls_port']}" not in asterisk.cli("pjsip show transports")
        ok, (ping,) = ami_call(second.settings, second.ami_login("web"), [{"Action": "Ping"}])
        assert ok and ping.success
        # each instance has its own secrets: the first one's do not open the second
        assert second.ami_login("web").secret != asterisk.ami_login("web").secret
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_stopped_clean(second)
    second.destroy()
    assert not second.host_dir.exists()
    assert asterisk.is_running()


def test_background_start_and_stop(tmp_path):
    rt = asterisk_runtime.ensure_installed(make_settings(tmp_path / "bg", **OTHER_PORTS))
    started = time.monotonic()
    pid = rt.start(timeout=60)
    assert time.monotonic() - started < 30
    assert rt.pid() == pid and rt.status().running
    rt.stop()
    assert_stopped_clean(rt)
    assert rt.status().running is False
    rt.stop()  # stopping a stopped instance is a no-op
    rt.destroy()


def test_no_orphan_when_the_supervisor_is_killed(tmp_path):
    settings = make_settings(tmp_path / "orphan", **OTHER_PORTS)
    script = textwrap.dedent(
        f"""
        import dataclasses, pathlib, sys, time
        from provisioning import runtime
        from tests.asterisk_fixture import make_settings
        rt = runtime.ensure_installed(make_settings(pathlib.Path({str(settings.state_dir)!r}), **{OTHER_PORTS!r}))
        print(rt.start(timeout=60), flush=True)
        time.sleep(600)
        """
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(supervisor.stdout.readline())
        rt = asterisk_runtime.ensure_installed(settings)
        assert rt.pid() == pid
        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 10
        while instance_pids(rt):
            assert time.monotonic() < deadline, "Asterisk outlived its killed supervisor"
            time.sleep(0.05)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert_stopped_clean(rt)
    rt.destroy()


def test_crashed_asterisk_leaves_no_mount(tmp_path):
    rt = asterisk_runtime.ensure_installed(make_settings(tmp_path / "crash", **OTHER_PORTS))
    pid = rt.start(timeout=60)
    import os

    os.kill(pid, signal.SIGKILL)
    rt.proc.wait(timeout=10)
    assert_stopped_clean(rt)
    rt.start(timeout=60)  # a stale control socket and pid file do not block a restart
    with pytest.raises(asterisk_runtime.AsteriskRuntimeError, match="still runs"):
        rt.destroy()
    rt.stop()
    assert_stopped_clean(rt)
    rt.destroy()
