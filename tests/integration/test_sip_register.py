"""Who may register over TLS: the right password from an allowed network, nobody else."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from provisioning import certs
from tawasul.models import Centre, Device
from tawasul.vault import Vault
from tests.sip_probe import register

pytestmark = pytest.mark.integration


def secret_of(p, user):
    with p.db.read() as session:
        token = session.scalars(sa.select(Device.secret_encrypted).where(Device.sip_user == user)).one()
    return Vault.for_settings(p.settings).decrypt(token)


def reg(p, user, password):
    ca = str(certs.certs_dir(p.settings) / certs.CA_CERT_NAME)
    return register("127.0.0.1", p.settings.sip_tls_port, user, password, ca)


def security_log_has(p, *words, timeout=5):
    path = p.runtime.log_dir / "security"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if any(all(w in line for w in words) for line in text.splitlines()):
            return True
        time.sleep(0.1)
    return False


def test_right_password_registers_over_tls(provisioned_asterisk):
    p = provisioned_asterisk
    # (the contact goes again when the probe closes its TLS connection)
    assert reg(p, "centre-med-1", secret_of(p, "centre-med-1")) == 200


def test_wrong_password_is_refused_and_logged(provisioned_asterisk):
    p = provisioned_asterisk
    assert reg(p, "centre-ynb-1", "not-the-password") in (401, 403)
    assert security_log_has(p, "ChallengeResponseFailed", "centre-ynb-1")


def test_unprovisioned_device_cannot_register(provisioned_asterisk):
    p = provisioned_asterisk
    assert reg(p, "centre-xyz-9", "whatever") in (401, 403)
    assert security_log_has(p, "centre-xyz-9")


def test_centre_acl_refuses_other_networks(provisioned_asterisk):
    p = provisioned_asterisk
    with p.db.write() as session:
        session.scalars(sa.select(Centre).where(Centre.code == "ULA")).one().allowed_networks = "10.99.0.0/16"
    try:
        assert p.apply().ok
        assert reg(p, "centre-ula-1", secret_of(p, "centre-ula-1")) in (401, 403)
        assert security_log_has(p, "centre-ula-1", "ACL")
    finally:
        with p.db.write() as session:
            session.scalars(sa.select(Centre).where(Centre.code == "ULA")).one().allowed_networks = "127.0.0.0/8"
        assert p.apply().ok
    assert reg(p, "centre-ula-1", secret_of(p, "centre-ula-1")) == 200
