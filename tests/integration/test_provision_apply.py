"""`provision apply` against the real Asterisk of the session: endpoints live, narrow reloads, no secrets."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from provisioning.apply import RELOADS
from tawasul.models import AuditEntry, Centre, Device
from tawasul.vault import Vault

pytestmark = pytest.mark.integration

PJSIP_RELOAD = dict(RELOADS)["pjsip.conf"]
DIALPLAN_RELOAD = dict(RELOADS)["extensions.conf"]


def demo_users(db):
    with db.read() as session:
        return sorted(session.scalars(sa.select(Device.sip_user).where(Device.enabled)).all())


def set_device(db, user, **values):
    with db.write() as session:
        device = session.scalars(sa.select(Device).where(Device.sip_user == user)).one()
        for key, value in values.items():
            setattr(device, key, value)


def test_every_demo_device_is_an_endpoint(provisioned_asterisk):
    out = provisioned_asterisk.runtime.cli("pjsip show endpoints")
    users = demo_users(provisioned_asterisk.db)
    assert len(users) == 10
    for user in users + ["governor-console"]:  # and the console page's own endpoint (WebRTC)
        assert re.search(rf"(?m)^\s*Endpoint:\s+{re.escape(user)}\b", out), user
    assert "Objects found: 11" in out


def test_nothing_changed_reloads_nothing(provisioned_asterisk):
    provisioned_asterisk.apply()  # settle
    sent = len(provisioned_asterisk.sent)
    result = provisioned_asterisk.apply()
    assert result.ok and result.changed_files == [] and result.reloaded == [] and result.actions == []
    assert len(provisioned_asterisk.sent) == sent  # no AMI connection at all


def test_device_change_reloads_pjsip_only_and_is_live(provisioned_asterisk):
    p = provisioned_asterisk
    p.apply()
    set_device(p.db, "centre-bdr-1", enabled=False)
    try:
        result = p.apply()
        assert result.ok, result.errors
        assert result.changed_files == ["etc/pjsip.conf"]
        assert p.sent[-1] == [PJSIP_RELOAD] and result.actions == [PJSIP_RELOAD]
        assert result.reloaded == ["module reload res_pjsip.so"]
        assert "centre-bdr-1" not in p.runtime.cli("pjsip show endpoints")
    finally:
        set_device(p.db, "centre-bdr-1", enabled=True)
        result = p.apply()
    assert p.sent[-1] == [PJSIP_RELOAD]
    assert "centre-bdr-1" in p.runtime.cli("pjsip show endpoints")


def test_governor_desk_change_reloads_dialplan_then_pjsip(provisioned_asterisk):
    p = provisioned_asterisk
    p.apply()
    set_device(p.db, "governor-desk-1", enabled=False)
    try:
        result = p.apply()
        assert result.ok, result.errors
        # the desk is also the waiting line's member (queues.conf): app_queue is reloaded after pjsip
        assert result.changed_files == ["etc/extensions.conf", "etc/pjsip.conf", "etc/queues.conf"]
        assert p.sent[-1] == [DIALPLAN_RELOAD, PJSIP_RELOAD, dict(RELOADS)["queues.conf"]]
        # without the desk phone, the console page alone takes the sessions
        assert "Dial(PJSIP/governor-console,30,L(" in p.runtime.cli("dialplan show 100@from-centre")
    finally:
        set_device(p.db, "governor-desk-1", enabled=True)
        p.apply()
    assert "Dial(PJSIP/governor-desk-1&PJSIP/governor-console,30,L(" in p.runtime.cli("dialplan show 100@from-centre")


def test_centre_endpoint_is_tls_srtp_with_its_acl(provisioned_asterisk):
    out = provisioned_asterisk.runtime.cli("pjsip show endpoint centre-bdr-1")
    assert re.search(r"(?m)^\s*media_encryption\s*:\s*sdes\s*$", out)
    assert re.search(r"(?m)^\s*media_encryption_optimistic\s*:\s*false\s*$", out)
    assert re.search(r"(?m)^\s*transport\s*:\s*transport-tls\s*$", out)
    assert re.search(r"(?m)^\s*context\s*:\s*from-centre\s*$", out)
    assert re.search(r"(?m)^\s*direct_media\s*:\s*false\s*$", out)
    # Asterisk shows that an inline ACL is set, not its rules (enforcement: test_sip_register.py)
    assert re.search(r"(?m)^\s*acl\s*:\s*deny/permit\s*$", out), out
    assert re.search(r"(?m)^\s*contact_acl\s*:\s*deny/permit\s*$", out), out
    desk = provisioned_asterisk.runtime.cli("pjsip show endpoint governor-desk-1")
    assert re.search(r"(?m)^\s*device_state_busy_at\s*:\s*1\s*$", desk)
    assert re.search(r"(?m)^\s*context\s*:\s*from-governor\s*$", desk)
    auth = provisioned_asterisk.runtime.cli("pjsip show auth centre-bdr-1")
    assert "digest" in auth


def test_tls_transport_is_up(provisioned_asterisk):
    out = provisioned_asterisk.runtime.cli("pjsip show transports")
    assert "transport-tls" in out and f"127.0.0.1:{provisioned_asterisk.settings.sip_tls_port}" in out


def test_no_plain_secret_in_any_rendered_file(provisioned_asterisk):
    p = provisioned_asterisk
    vault = Vault.for_settings(p.settings)
    with p.db.read() as session:
        secrets = [vault.decrypt(t) for t in session.scalars(sa.select(Device.secret_encrypted))]
    assert len(secrets) == 10
    etc = p.runtime.host_dir / "etc"
    for path in etc.iterdir():
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, path.name
    assert not re.search(r"(?m)^\s*password\s*=", (etc / "pjsip.conf").read_text())


def test_a_refused_render_writes_and_reloads_nothing(provisioned_asterisk):
    p = provisioned_asterisk
    p.apply()
    before = {f.name: f.read_text() for f in (p.runtime.host_dir / "etc").iterdir()}
    sent = len(p.sent)
    with p.db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one()
        centre.allowed_networks = "127.0.0.0/8,not-a-network"
    try:
        result = p.apply("it_admin")
        assert not result.ok and "not-a-network" in " ".join(result.errors)
        assert result.changed_files == [] and result.reloaded == []
        assert len(p.sent) == sent
        assert {f.name: f.read_text() for f in (p.runtime.host_dir / "etc").iterdir()} == before
        with p.db.read() as session:
            entry = session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "provision.apply")
                                    .order_by(AuditEntry.id.desc())).first()
        assert entry.actor == "it_admin" and entry.detail["errors"] and entry.detail["reloaded"] == []
    finally:
        with p.db.write() as session:
            centre = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one()
            centre.allowed_networks = "127.0.0.0/8"


def test_demo_apply_is_fast(provisioned_asterisk):
    p = provisioned_asterisk
    set_device(p.db, "centre-khb-1", label="Khaybar video phone (moved)")
    try:
        result = p.apply()
        assert result.ok and result.reloaded == ["module reload res_pjsip.so"]
        print(f"demo render + apply with a pjsip reload: {result.seconds:.3f} s")
        assert result.seconds < 5
    finally:
        set_device(p.db, "centre-khb-1", label="Khaybar video phone")
        p.apply()
