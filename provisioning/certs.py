"""The deployment's certificates, made with the `cryptography` package.

<state_dir>/certs/ holds:

    ca.crt, ca.key              the deployment CA (phones trust ca.crt)
    asterisk.crt, asterisk.key  Asterisk's TLS server certificate, signed by the CA;
                                SAN = settings.sip_host (IP or DNS name), 127.0.0.1, localhost

Keys are written with mode 0600, atomically. `ensure_certificates(settings)` makes whatever
is missing (or no longer matches: a server certificate not signed by the CA, or without the
current sip_host in its SAN) and leaves the rest alone; `rotate(settings, ca=False)` issues a
new server certificate (and with ca=True a new CA first). Phones must be given the new
ca.crt after a CA rotation.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning import writer
from provisioning.render import TLS_CERT_NAME, TLS_KEY_NAME

CA_CERT_NAME = "ca.crt"
CA_KEY_NAME = "ca.key"
CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity phones and browsers still accept for a server certificate
PUBLIC_MODE = 0o600  # not secret, but nothing in the state folder is open to others


def certs_dir(settings) -> Path:
    return Path(settings.state_dir) / "certs"


@dataclass(frozen=True)
class CertInfo:
    path: Path
    subject: str
    serial: int
    not_after: dt.datetime
    san: tuple[str, ...]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def server_names(settings) -> list[str]:
    """The SAN entries of the server certificate: sip_host, 127.0.0.1, localhost (no duplicates)."""
    names = []
    for name in (settings.sip_host, "127.0.0.1", "localhost"):
        if name and name not in names:
            names.append(name)
    return names


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tawasul"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Tawasul deployment CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_server(settings, ca_cert: x509.Certificate, ca_key) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    names = server_names(settings)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tawasul"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_key(path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None


def _san_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple([str(ip) for ip in san.get_values_for_type(x509.IPAddress)] + san.get_values_for_type(x509.DNSName))


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False


def _same_key(cert: x509.Certificate, key) -> bool:
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return key is not None and cert.public_key().public_bytes(serialization.Encoding.PEM, pub) == \
        key.public_key().public_bytes(serialization.Encoding.PEM, pub)


def _write_pair(folder: Path, cert_name: str, key_name: str, cert: x509.Certificate, key) -> None:
    # The key first: a certificate never sits next to a key it does not match for longer than a rename.
    writer.write_atomic(folder / key_name, _key_pem(key), writer.PRIVATE_MODE)
    writer.write_atomic(folder / cert_name, _cert_pem(cert), PUBLIC_MODE)


def _server_ok(settings, folder: Path, ca_cert: x509.Certificate) -> bool:
    cert = _load_cert(folder / TLS_CERT_NAME)
    if cert is None or not _same_key(cert, _load_key(folder / TLS_KEY_NAME)):
        return False
    if not _signed_by(cert, ca_cert) or cert.not_valid_after_utc <= _now() + dt.timedelta(days=7):
        return False
    return set(server_names(settings)) <= set(_san_names(cert))


def ensure_certificates(settings) -> list[Path]:
    """Create the CA and the server certificate where missing or unusable. Returns the files written."""
    folder = certs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    ca_cert, ca_key = _load_cert(folder / CA_CERT_NAME), _load_key(folder / CA_KEY_NAME)
    if ca_cert is None or not _same_key(ca_cert, ca_key):
        ca_cert, ca_key = _make_ca()
        _write_pair(folder, CA_CERT_NAME, CA_KEY_NAME, ca_cert, ca_key)
        written += [folder / CA_CERT_NAME, folder / CA_KEY_NAME]
    if not _server_ok(settings, folder, ca_cert):
        cert, key = _make_server(settings, ca_cert, ca_key)
        _write_pair(folder, TLS_CERT_NAME, TLS_KEY_NAME, cert, key)
        written += [folder / TLS_CERT_NAME, folder / TLS_KEY_NAME]
    return written


def rotate(settings, ca: bool = False) -> list[Path]:
    """Issue a new server certificate (and, with `ca`, a new CA first). Returns the files written."""
    folder = certs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    ca_cert, ca_key = _load_cert(folder / CA_CERT_NAME), _load_key(folder / CA_KEY_NAME)
    if ca or ca_cert is None or not _same_key(ca_cert, ca_key):
        ca_cert, ca_key = _make_ca()
        _write_pair(folder, CA_CERT_NAME, CA_KEY_NAME, ca_cert, ca_key)
        written += [folder / CA_CERT_NAME, folder / CA_KEY_NAME]
    cert, key = _make_server(settings, ca_cert, ca_key)
    _write_pair(folder, TLS_CERT_NAME, TLS_KEY_NAME, cert, key)
    return written + [folder / TLS_CERT_NAME, folder / TLS_KEY_NAME]


def info(path: Path) -> CertInfo | None:
    cert = _load_cert(path)
    if cert is None:
        return None
    return CertInfo(path, cert.subject.rfc4514_string(), cert.serial_number, cert.not_valid_after_utc, _san_names(cert))


def status(settings) -> list[tuple[str, CertInfo | None, str]]:
    """(name, info or None, problem or '') for the CA and the server certificate."""
    folder = certs_dir(settings)
    ca_cert = _load_cert(folder / CA_CERT_NAME)
    out = []
    ca_problem = "" if ca_cert is not None and _same_key(ca_cert, _load_key(folder / CA_KEY_NAME)) else "missing or key mismatch"
    out.append((CA_CERT_NAME, info(folder / CA_CERT_NAME), ca_problem))
    if ca_cert is None:
        server_problem = "no CA"
    elif _server_ok(settings, folder, ca_cert):
        server_problem = ""
    else:
        server_problem = "missing, expiring, not signed by the CA, key mismatch or SAN without " + settings.sip_host
    out.append((TLS_CERT_NAME, info(folder / TLS_CERT_NAME), server_problem))
    return out
