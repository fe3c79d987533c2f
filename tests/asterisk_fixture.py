"""A real Asterisk for integration tests: one instance for the whole session.

Import the fixture from tests/conftest.py:  `from tests.asterisk_fixture import asterisk`.
It runs on ports apart from the defaults, so a `make run` instance can run beside it.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from provisioning import certs, prompts
from provisioning import runtime as asterisk_runtime
from tawasul import ami
from tawasul.settings import Settings
from tests.live import free_port

# Free ports picked once per test run, so two runs on one machine (or a `make run`) never clash.
TEST_PORTS = {
    "ami_port": free_port(),
    "sip_udp_port": free_port(),
    "sip_tls_port": free_port(),
    "agi_port": free_port(),
    "webrtc_port": free_port(),
    "rtp_start": 30000,
    "rtp_end": 30999,
}


def make_settings(state_dir: Path, **overrides) -> Settings:
    """Settings for a test instance: `TEST_PORTS` unless overridden, the machine's cache."""
    values = {**TEST_PORTS, **overrides}
    if os.environ.get("TAWASUL_ASTERISK_CACHE"):
        values.setdefault("asterisk_cache", Path(os.environ["TAWASUL_ASTERISK_CACHE"]))
    return dataclasses.replace(Settings(), state_dir=Path(state_dir), **values)


def instance_pids(rt: asterisk_runtime.Runtime) -> list[int]:
    """Every live process whose command line names this instance's asterisk.conf."""
    marker = str(rt.config_file).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in cmdline and asterisk_runtime._pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def assert_stopped_clean(rt: asterisk_runtime.Runtime) -> None:
    """No Asterisk left for this instance, and nothing mounted in its root filesystem."""
    assert not rt.is_running()
    assert instance_pids(rt) == [], f"Asterisk processes left: {instance_pids(rt)}"
    if rt.root is not None:
        assert asterisk_runtime.mounts_under(rt.root) == [], "mounts left inside the Asterisk root"


def ami_call(settings: Settings, login: ami.Login, actions: list[dict], timeout: float = 10):
    """Log in to AMI (tawasul.ami), send `actions`: (logged_in, [responses]); safe while
    another event loop runs on this thread (Playwright's sync API keeps one running)."""
    try:
        return True, ami.run_actions_blocking(settings, login, actions, timeout)
    except ami.AmiUnavailable:
        return False, []


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory):
    """A running Asterisk (provisioning.runtime.Runtime) for a throwaway state folder."""
    settings = make_settings(tmp_path_factory.mktemp("asterisk-state"))
    rt = asterisk_runtime.ensure_installed(settings)
    certs.ensure_certificates(settings)  # TLS on, as under `tawasul up`; no device until provisioned
    prompts.generate_prompts(rt.sounds_dir)
    rt.start(timeout=60)
    try:
        yield rt
    finally:
        rt.stop()
        assert_stopped_clean(rt)
        rt.destroy()  # instance folders live in the shared cache: do not leave one per test run


@dataclasses.dataclass
class Provisioned:
    runtime: asterisk_runtime.Runtime
    db: object  # tawasul.db.Database holding the demo region
    settings: Settings
    sent: list  # every AMI action list sent by apply() through `sender`

    def sender(self, settings, secret, actions):
        from provisioning.apply import ami_sender

        self.sent.append([dict(a) for a in actions])
        return ami_sender(settings, secret, actions)

    def apply(self, actor: str = "test"):
        from provisioning.apply import apply

        return apply(self.settings, self.db, self.runtime, actor, sender=self.sender)


@pytest.fixture(scope="session")
def provisioned_asterisk(asterisk):
    """The session's Asterisk with the demo region in a database of its state folder, applied."""
    from tawasul import demo
    from tawasul.db import Database, upgrade

    settings = asterisk.settings
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    with db.write() as session:
        demo.seed(session, settings)
    provisioned = Provisioned(asterisk, db, settings, [])
    result = provisioned.apply("fixture")
    assert result.ok, result.errors
    try:
        yield provisioned
    finally:
        db.dispose()
