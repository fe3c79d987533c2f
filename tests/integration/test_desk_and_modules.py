"""The governor's desk behind its own network ACL, its address changes shown to IT, and the
board's check of Asterisk's loaded modules, against the real Asterisk (provisioned_asterisk)."""
from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import pytest
import sqlalchemy as sa

from provisioning import certs
from provisioning import runtime as asterisk_runtime
from provisioning.apply import apply
from tawasul import asterisk_modules, desk_contact
from tawasul.ami import AmiClient
from tawasul.callwatch import CallWatcher
from tawasul.models import AuditEntry, Device, DeviceKind
from tawasul.vault import Vault
from tests.integration.test_board_admin import it_client  # noqa: F401  (fixture)
from tests.sip_probe import register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def desk(p) -> tuple[str, str]:
    """The demo desk's SIP user and password."""
    with p.db.read() as session:
        device = session.scalars(sa.select(Device).where(Device.kind == DeviceKind.GOVERNOR_DESK)).first()
        return device.sip_user, Vault.for_settings(p.settings).decrypt(device.secret_encrypted)


def reg(p, user, password, source):
    ca = str(certs.certs_dir(p.settings) / certs.CA_CERT_NAME)
    return register("127.0.0.1", p.settings.sip_tls_port, user, password, ca, source=source)


def test_the_desk_registers_only_from_its_networks(provisioned_asterisk):
    p = provisioned_asterisk
    user, password = desk(p)
    narrow = dataclasses.replace(p.settings, desk_networks="127.0.0.1/32")
    runtime = asterisk_runtime.Runtime(narrow, root=p.runtime.root, binary=p.runtime.binary)  # the same instance
    try:
        result = apply(narrow, p.db, runtime, "test")
        assert result.ok, result.errors
        assert "permit = 127.0.0.1/32" in (p.runtime.host_dir / "etc" / "pjsip.conf").read_text()
        assert reg(p, user, password, "127.0.0.5") in (401, 403)  # the right password, the wrong place
        assert reg(p, user, password, "127.0.0.1") == 200
    finally:
        assert p.apply().ok  # back to the default, 127.0.0.0/8
    assert reg(p, user, password, "127.0.0.5") == 200


class Watcher:
    """The call watcher (as the watch AMI user) on a thread of its own."""

    def __init__(self, p):
        self.p, self.loop, self.ready = p, asyncio.new_event_loop(), threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)

    async def _run(self):
        client = AmiClient.for_settings(self.p.settings, self.p.runtime.ami_login("watch"))
        watcher = CallWatcher(self.p.db, client)
        self.stop = asyncio.Event()
        await client.connect()
        self.ready.set()
        try:
            await watcher.run(self.stop)
        finally:
            client.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(15), "the call watcher did not log in to AMI"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def desk_entries(p, action):
    with p.db.read() as session:
        return session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)
                               .order_by(AuditEntry.id)).all()


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("not in time")


def test_a_new_desk_address_is_logged_and_shown_on_the_board(provisioned_asterisk, it_client, caplog):  # noqa: F811
    p = provisioned_asterisk
    user, password = desk(p)
    with p.db.write() as session:  # a clean history: the first address seen is not a change
        session.execute(sa.delete(AuditEntry).where(AuditEntry.action.in_((desk_contact.FIRST, desk_contact.CHANGED))))
    with Watcher(p), caplog.at_level("WARNING", logger="tawasul.desk"):
        assert reg(p, user, password, "127.0.0.1") == 200
        [first] = wait_until(lambda: desk_entries(p, desk_contact.FIRST))
        assert first.detail["address"] == "127.0.0.1"
        assert 'id="desk-changes"' not in it_client.get("/board/").get_data(as_text=True)
        assert reg(p, user, password, "127.0.0.1") == 200  # the same place again: nothing to say
        assert reg(p, user, password, "127.0.0.7") == 200
        [changed] = wait_until(lambda: desk_entries(p, desk_contact.CHANGED))
    assert (changed.detail["previous"], changed.detail["address"]) == ("127.0.0.1", "127.0.0.7")
    assert any("127.0.0.7" in r.getMessage() and user in r.getMessage() for r in caplog.records)
    page = it_client.get("/board/").get_data(as_text=True)
    assert 'id="desk-changes"' in page and 'class="desk-address">127.0.0.7<' in page
    with p.db.write() as session:
        session.execute(sa.delete(AuditEntry).where(AuditEntry.action.in_((desk_contact.FIRST, desk_contact.CHANGED))))


def test_the_board_shows_a_forbidden_module_that_asterisk_has_loaded(provisioned_asterisk, it_client,  # noqa: F811
                                                                      monkeypatch):
    p = provisioned_asterisk
    assert asterisk_modules.loaded_forbidden(p.settings) == []
    page = it_client.get("/board/").get_data(as_text=True)
    assert 'id="modules-ok"' in page and 'id="forbidden-modules"' not in page
    # A module Asterisk has loaded (harmless, and needed) counts as forbidden for this test only.
    monkeypatch.setattr(asterisk_modules, "FORBIDDEN_MODULES",
                        (*asterisk_modules.FORBIDDEN_MODULES, "res_sorcery_config"))
    assert asterisk_modules.loaded_forbidden(p.settings) == ["res_sorcery_config"]
    page = it_client.get("/board/").get_data(as_text=True)
    assert 'id="forbidden-modules"' in page and "res_sorcery_config" in page and 'id="modules-ok"' not in page
