"""Phone profiles: baresip folders, Yealink and Grandstream files, the `tawasul phones` command."""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import wave
import xml.etree.ElementTree as ET

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from provisioning import phones
from tawasul import demo
from tawasul.cli import main
from tawasul.models import Device
from tawasul.vault import Vault
from tests.unit.phone_helpers import write_test_ca

ACCOUNT = re.compile(
    r'^"(?P<name>[^"]*)" <sip:(?P<user>[^@;>]+)@(?P<host>[^:;>]+):(?P<port>\d+);transport=(?P<transport>tls)>'
    r'(?P<params>(;[a-z_]+=[^;\s]+)+)$')


@pytest.fixture
def ca(settings):
    return write_test_ca(settings.state_dir)


@pytest.fixture
def vault(settings):
    return Vault.for_settings(settings)


def account_params(folder):
    lines = [line for line in (folder / "accounts").read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    match = ACCOUNT.match(lines[0])
    assert match, lines[0]
    params = dict(p.split("=", 1) for p in match.group("params").strip(";").split(";"))
    return match, params


def config_values(folder):
    values = {}
    for line in (folder / "config").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values.setdefault(key, []).append(value.strip())
    return values


def yealink_keys(text):
    return dict(line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_baresip_folder_is_complete_and_private(demo_db, settings, ca, vault, tmp_path):
    folder = tmp_path / "phone"
    with demo_db.read() as session:
        written = phones.export(settings, session, vault, demo.centre_phone_user("BDR"), "baresip", folder)
        device = phones.find_device(session, demo.centre_phone_user("BDR"))
        secret = vault.decrypt(device.secret_encrypted)
    assert {p.name for p in written} == {"config", "accounts", "ca.pem", "tone-8k.wav", "profile.json"}
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "accounts").stat().st_mode & 0o777 == 0o600
    match, params = account_params(folder)
    assert (match.group("user"), match.group("host"), match.group("port")) == (
        "centre-bdr-1", settings.sip_host, str(settings.sip_tls_port))
    assert match.group("transport") == "tls"
    assert params["mediaenc"] == "srtp-mand" and params["auth_pass"] == secret
    assert params["answermode"] == "manual" and params["regint"] == "60"
    assert (folder / "ca.pem").read_bytes() == ca.read_bytes()
    config = config_values(folder)
    assert config["sip_cafile"] == [str((folder / "ca.pem").resolve())]
    assert "srtp.so" in config["module"] and "ctrl_tcp.so" in config["module"]
    assert config["video_source"] == ["fakevideo,nil"]
    assert secret not in (folder / "config").read_text() + (folder / "profile.json").read_text()
    info = json.loads((folder / "profile.json").read_text())
    assert config["ctrl_tcp_listen"] == [f"127.0.0.1:{info['ctrl_port']}"]
    assert config["sip_listen"] == [f"127.0.0.1:{info['sip_port']}"]
    with wave.open(str(folder / "tone-8k.wav")) as tone:
        assert (tone.getframerate(), tone.getnchannels(), tone.getsampwidth()) == (8000, 1, 2)


def test_governor_desk_answers_by_itself_unless_told_not_to(demo_db, settings, ca, vault, tmp_path):
    with demo_db.read() as session:
        phones.export(settings, session, vault, demo.GOVERNOR_DESK_USER, "baresip", tmp_path / "a")
        phones.export(settings, session, vault, "02:54:57:00:01:00", "baresip", tmp_path / "b", auto_answer=False)
        phones.export(settings, session, vault, "centre-med-1", "baresip", tmp_path / "c", auto_answer=True)
    assert account_params(tmp_path / "a")[1]["answermode"] == "auto"
    assert account_params(tmp_path / "b")[1]["answermode"] == "manual"
    assert account_params(tmp_path / "c")[1]["answermode"] == "manual"  # never for a centre phone


def test_demo_profiles_have_ports_ten_apart(demo_db, settings, ca, vault):
    with demo_db.read() as session:
        root = phones.export_demo_profiles(settings, session, vault)
        users = set(session.scalars(sa.select(Device.sip_user)))
    assert root == settings.state_dir / "phones"
    assert {p.name for p in root.iterdir()} == users
    infos = [json.loads((root / user / "profile.json").read_text()) for user in users]
    sip_ports = sorted(i["sip_port"] for i in infos)
    assert all(b - a >= 10 for a, b in itertools.pairwise(sip_ports))
    assert all(i["sip_port"] + 1 == i["tls_port"] and 0 < i["ctrl_port"] - i["sip_port"] < 10 for i in infos)
    assert all(settings.rtp_end < i["sip_port"] < 32768 for i in infos)


def test_baresip_needs_the_ca(demo_db, settings, vault, tmp_path):
    with demo_db.read() as session, pytest.raises(phones.ProfileError, match="no deployment CA"):
        phones.export(settings, session, vault, "centre-bdr-1", "baresip", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _make_vendor(db, sip_user, vendor, model):
    with db.write() as session:
        device = phones.find_device(session, sip_user)
        device.vendor, device.model = vendor, model
        return phones.normalize_mac(device.mac)


@pytest.mark.parametrize("model", ["VP59", "T58W", "T46U"])
def test_yealink_centre_phone(demo_db, settings, vault, tmp_path, model):
    mac = _make_vendor(demo_db, "centre-ynb-1", "yealink", model)
    with demo_db.read() as session:
        [path] = phones.export(settings, session, vault, "centre-ynb-1", "yealink", tmp_path)
        secret = vault.decrypt(phones.find_device(session, "centre-ynb-1").secret_encrypted)
    assert path.name == f"{mac}.cfg" and path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("#!version:1.0.0.1\n")
    keys = yealink_keys(text)
    assert keys["account.1.sip_server.1.transport_type"] == "2"
    assert keys["account.1.srtp_encryption"] == "2"
    assert keys["account.1.sip_server.1.port"] == str(settings.sip_tls_port)
    assert keys["account.1.password"] == secret
    assert keys["lang.gui"] == "Arabic"
    # privacy mode: handset/headset only, no loudspeaker, no auto-answer
    assert keys["features.speaker_mode.enable"] == "0"
    assert keys["features.handset_mode.enable"] == "1"
    assert keys["account.1.auto_answer"] == "0"
    assert keys["features.hotline_number"] == "100"
    assert ("account.1.video_codec.h264.enable" in keys) == (model in ("VP59", "T58W"))


def test_yealink_governor_desk_auto_answers(demo_db, settings, vault, tmp_path):
    _make_vendor(demo_db, demo.GOVERNOR_DESK_USER, "yealink", "VP59")
    with demo_db.read() as session:
        [path] = phones.export(settings, session, vault, demo.GOVERNOR_DESK_USER, "yealink", tmp_path)
    keys = yealink_keys(path.read_text())
    assert keys["account.1.auto_answer"] == "1" and keys["features.speaker_mode.enable"] == "1"


@pytest.mark.parametrize("user, privacy", [("centre-ula-1", True), (demo.GOVERNOR_DESK_USER, False)])
def test_grandstream(demo_db, settings, vault, tmp_path, user, privacy):
    mac = _make_vendor(demo_db, user, "grandstream", "GXV3380")
    with demo_db.read() as session:
        [path] = phones.export(settings, session, vault, user, "grandstream", tmp_path)
    assert path.name == f"cfg{mac}.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "gs_provision" and root.findtext("mac") == mac
    p = {item.tag: item.text for item in root.find("config")}
    assert p["P130"] == "2" and p["P183"] == "2" and p["P1362"] == "ar"
    assert p["P35"] == user and p["P47"] == f"{settings.sip_host}:{settings.sip_tls_port}"
    assert p["P90"] == ("0" if privacy else "1")
    assert ("P290" in p) == privacy  # a centre phone dials the governor route and the echo test only
    assert p["P2307"] == "9"  # the model template extends the base


def test_cli_export_and_refusals(demo_db, settings, ca, tmp_path):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["--state-dir", str(settings.state_dir), "--database-url", demo_db.url,
                                    "phones", *args])

    ok = run("export", "centre-bdr-1", "--out", str(tmp_path / "p"))
    assert ok.exit_code == 0, ok.output
    assert "baresip -f" in ok.output
    unknown = run("export", "no-such-phone", "--out", str(tmp_path / "q"))
    assert unknown.exit_code == 2
    assert "no device with SIP user or MAC address 'no-such-phone'" in unknown.output
    assert not (tmp_path / "q").exists()
    no_mac = run("export", "centre-bdr-1", "--format", "fax", "--out", str(tmp_path / "r"))
    assert no_mac.exit_code == 2
    ca.unlink()
    no_ca = run("export", "centre-bdr-1", "--out", str(tmp_path / "s"))
    assert no_ca.exit_code == 2 and "no deployment CA" in no_ca.output


def test_baresip_starts_from_the_exported_folder(demo_db, settings, ca, vault, tmp_path):
    """A real baresip loads its modules and its account (registering needs Asterisk's TLS side)."""
    folder = tmp_path / "phone"
    with demo_db.read() as session:
        phones.export(settings, session, vault, demo.GOVERNOR_DESK_USER, "baresip", folder)
    run = subprocess.run(["baresip", "-f", str(folder), "-t", "2"], check=False, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    out = run.stdout + run.stderr
    assert "Populated 1 account" in out, out
    assert "Using media encryption 'srtp-mand'" in out
    assert f"adding SIP CA: {folder / 'ca.pem'}" in out
    assert "baresip is ready." in out
    for bad in ("not found", "could not", "failed to load", "module not found"):
        assert bad not in out.lower(), out
