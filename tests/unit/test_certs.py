"""The deployment CA and Asterisk's server certificate."""
from __future__ import annotations

import dataclasses
import ipaddress
import stat

import pytest
from cryptography import x509

from provisioning import certs
from tawasul.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return dataclasses.replace(Settings(), state_dir=tmp_path / "state", sip_host="sip.tawasul.example")


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_chain_san_and_key_modes(settings):
    written = certs.ensure_certificates(settings)
    folder = certs.certs_dir(settings)
    assert {p.name for p in written} == {"ca.crt", "ca.key", "asterisk.crt", "asterisk.key"}
    ca, server = load(folder / "ca.crt"), load(folder / "asterisk.crt")
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"sip.tawasul.example", "localhost"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    for name in ("ca.key", "asterisk.key"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600


def test_ensure_is_idempotent_and_follows_sip_host(settings):
    certs.ensure_certificates(settings)
    folder = certs.certs_dir(settings)
    serial = load(folder / "asterisk.crt").serial_number
    assert certs.ensure_certificates(settings) == []
    moved = dataclasses.replace(settings, sip_host="10.1.2.3")
    assert {p.name for p in certs.ensure_certificates(moved)} == {"asterisk.crt", "asterisk.key"}
    server = load(folder / "asterisk.crt")
    assert server.serial_number != serial
    assert ipaddress.ip_address("10.1.2.3") in server.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)


def test_rotate_changes_the_serial_and_keeps_the_ca(settings):
    certs.ensure_certificates(settings)
    folder = certs.certs_dir(settings)
    ca_before, server_before = load(folder / "ca.crt"), load(folder / "asterisk.crt")
    certs.rotate(settings)
    ca_after, server_after = load(folder / "ca.crt"), load(folder / "asterisk.crt")
    assert ca_after == ca_before
    assert server_after.serial_number != server_before.serial_number
    server_after.verify_directly_issued_by(ca_after)
    certs.rotate(settings, ca=True)
    new_ca = load(folder / "ca.crt")
    assert new_ca.serial_number != ca_before.serial_number
    load(folder / "asterisk.crt").verify_directly_issued_by(new_ca)
    assert all(problem == "" for _n, _i, problem in certs.status(settings))


def test_status_reports_missing(settings):
    assert [problem != "" for _n, _i, problem in certs.status(settings)] == [True, True]
