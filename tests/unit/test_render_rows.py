"""Rendering from database rows: golden files, privacy invariants, refusals. No database needed.

Regenerate the golden files after an intended change:  TAWASUL_UPDATE_GOLDEN=1 pytest tests/unit/test_render_rows.py
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from agi import variables as v
from provisioning import render
from provisioning.rows import REALM, CentreRow, DeviceRow, Rows, md5_digest
from provisioning.validate import validate
from tawasul.settings import Settings
from tests.unit.test_render import options, section

AMI_SECRETS = {"web": "ami-secret-web", "watch": "ami-secret-watch", "provision": "ami-secret-provision"}

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "render"
GOLDEN_FILES = ("pjsip.conf", "extensions.conf", "queues.conf", "musiconhold.conf", "rtp.conf", "http.conf",
                "sorcery.conf")
PASSWORDS = {"centre-bdr-1": "bdr-pass-1", "centre-ynb-1": "ynb-pass-1", "centre-ula-1": "ula-pass-1",
             "governor-desk-1": "desk-pass-1", "centre-bdr-2": "off-pass", "staff-1": "staff-pass"}


def device(user, kind, centre=None, label="", enabled=True):
    return DeviceRow(user, kind, md5_digest(user, PASSWORDS[user]), centre, label or user, enabled)


ROWS = Rows(
    devices=(
        device("centre-bdr-1", "centre_phone", "BDR", "Badr video phone"),
        device("centre-bdr-2", "centre_phone", "BDR", "Badr spare (disabled)", enabled=False),
        device("centre-ula-1", "centre_phone", "ULA", "Al-Ula video phone (centre closed)"),
        device("centre-ynb-1", "centre_phone", "YNB", 'Yanbu "kiosk"; [east]'),
        device("governor-desk-1", "governor_desk", label="Governor's desk"),
        device("staff-1", "staff"),
    ),
    centres=(
        CentreRow("BDR", "Tawasul centre - Badr", ("127.0.0.0/8", "10.20.30.0/24")),
        CentreRow("ULA", "Tawasul centre - Al-Ula", ("127.0.0.0/8",), active=False),
        CentreRow("YNB", "Tawasul centre - Yanbu", ("127.0.0.2/32", "fd00:1::/64"), prompt_language="en"),
    ),
)


@pytest.fixture
def settings():
    return dataclasses.replace(Settings(), state_dir=Path("/var/lib/tawasul-golden"), sip_tls_port=5061)


@pytest.fixture
def layout(settings):
    return dataclasses.replace(render.default_layout(settings), tls_cert="/srv/keys/asterisk.crt",
                               tls_key="/srv/keys/asterisk.key")


@pytest.fixture
def files(settings, layout, monkeypatch):
    # the machine's own addresses (offered as ICE candidates on a loopback-only setup) stay out of the golden files
    monkeypatch.setattr(render, "_interface_addresses", lambda: {"127.0.0.1", "192.0.2.7"})
    return render.render_all(settings, ROWS, AMI_SECRETS, layout, agi_secret="agi-secret-1")


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden(files, name):
    path = GOLDEN / name
    if os.environ.get("TAWASUL_UPDATE_GOLDEN"):
        path.write_text(files[name], encoding="utf-8")
    assert files[name] == path.read_text(encoding="utf-8"), f"{name} differs from {path}"


def test_render_is_pure_and_valid(settings, layout, files):
    assert render.render_all(settings, ROWS, AMI_SECRETS, layout, agi_secret="agi-secret-1") == files
    assert validate(files) == []


def test_one_endpoint_auth_and_aor_per_rendered_device(files):
    pjsip = files["pjsip.conf"]
    for user in ("centre-bdr-1", "centre-ynb-1", "governor-desk-1"):
        assert len(re.findall(rf"(?m)^\[{user}\]\((endpoint-\w+|auth-device|aor-device)", pjsip)) == 3, user
    for user in ("centre-bdr-2", "centre-ula-1", "staff-1"):  # disabled, inactive centre, staff
        assert user not in pjsip and user not in files["extensions.conf"]


def test_endpoints_are_private_by_construction(files):
    common = dict(options(section(files["pjsip.conf"], "endpoint-common")))
    assert common["transport"] == "transport-tls"
    assert common["media_encryption"] == "sdes" and common["media_encryption_optimistic"] == "no"
    assert common["allow"] == "!all,opus,g722,ulaw,alaw,vp8,h264"
    for key in ("direct_media",):
        assert common[key] == "no"
    for key in ("rtp_symmetric", "force_rport", "rewrite_contact"):
        assert common[key] == "yes"
    aor = dict(options(section(files["pjsip.conf"], "aor-device")))
    assert aor["max_contacts"] == "1" and aor["remove_existing"] == "yes"
    assert "device_state_busy_at = 1" in section(files["pjsip.conf"], "endpoint-governor")


def test_no_plain_password_anywhere(files):
    for name, text in files.items():
        for password in PASSWORDS.values():
            assert password not in text, name
    assert not re.search(r"(?m)^\s*password\s*=", files["pjsip.conf"])
    digest = md5_digest("centre-bdr-1", PASSWORDS["centre-bdr-1"])
    assert f"password_digest = MD5:{digest}" in files["pjsip.conf"]
    assert f"default_realm = {REALM}" in files["pjsip.conf"]


def test_centre_acl_denies_all_but_its_networks(files):
    acl = options(section(files["pjsip.conf"], "acl-centre-ynb"))
    assert acl[:2] == [("deny", "0.0.0.0/0.0.0.0"), ("deny", "::/0")]
    assert ("permit", "127.0.0.2/32") in acl and ("permit", "fd00:1::/64") in acl
    assert ("contact_permit", "fd00:1::/64") in acl and ("permit", "127.0.0.0/8") not in acl
    assert "[centre-ynb-1](endpoint-centre,acl-centre-ynb)" in files["pjsip.conf"]


def test_free_text_cannot_break_the_file(files):
    assert '; Yanbu  kiosk    east' in files["pjsip.conf"]
    assert 'callerid = "Yanbu  kiosk    east" <centre-ynb-1>' in files["pjsip.conf"]


def test_dialplan_acts_on_the_agi_decision_only(files):
    centre = section(files["extensions.conf"], "from-centre")
    assert "Gosub(tawasul-decide,s,1(${CHANNEL(endpoint)}))" in centre
    decide = options(section(files["extensions.conf"], "tawasul-decide"))
    # A bounded wait: the AGI ends when the bound runs out, and then there is no decision (T).
    assert decide == [("exten", "s,1,Set(AGIEXITONHANGUP=yes)"), ("same", f"n,Set({v.DEADLINE}={v.ANSWER_SECONDS})"),
                      ("same", "n,AGI(agi://127.0.0.1:4573/route_call,${ARG1})"), ("same", f"n,Set({v.DEADLINE}=0)"),
                      ("same", "n,Return()"), ("exten", f"T,1,Set({v.TAWASUL_DECISION}=)"), ("same", "n,Return()")]
    # The server's secret, as the global it reads (and the file holding it is private).
    assert (v.TAWASUL_AGI_SECRET, "agi-secret-1") in options(section(files["extensions.conf"], "globals"))
    assert "extensions.conf" in render.PRIVATE_FILES
    assert f'GotoIf($["${{{v.TAWASUL_DECISION}}}" = "{v.CONNECT}"]?connect)' in centre
    assert f'"${{{v.TAWASUL_DECISION}}}" = "{v.WAIT}"' in centre
    assert f"Set({v.TAWASUL_DECISION}=)" in centre  # cleared before asking
    # the only Dial is after the connect label, to the governor's desk, with both legs secure
    lines = [value for key, value in options(centre)]
    connect = next(i for i, line in enumerate(lines) if line.startswith("n(connect)"))
    dials = [i for i, line in enumerate(lines) if "Dial(" in line]
    assert dials and all(i > connect for i in dials)
    # the session ends with its slot (Dial's L option), warned one minute before, to both sides
    assert "Dial(PJSIP/governor-desk-1&PJSIP/governor-console,30,L($[${TAWASUL_SLOT_SECONDS} * 1000]:60000))" in centre
    for setting in ("LIMIT_PLAYAUDIO_CALLER=yes", "LIMIT_PLAYAUDIO_CALLEE=yes",
                    "LIMIT_WARNING_FILE=tawasul/session-ending"):
        assert lines.index(f"n,Set({setting})") < dials[0]
    secure = lines.index('n,GotoIf($["${CHANNEL(pjsip,secure)}" != "1"]?deny)')
    group = lines.index("n,GotoIf($[${GROUP_COUNT(governor@tawasul)} > 1]?tawasul-line,s,1)")
    assert connect < secure < group < dials[0]
    assert "secure_bridge" not in "\n".join(lines)  # chan_pjsip refuses it: every Dial would fail
    assert f"Set(TIMEOUT(absolute)=$[${{{v.TAWASUL_SLOT_SECONDS}}} + 5])" in centre
    assert f"Set(CALLERID(name)=${{{v.TAWASUL_CALLER_NAME}}})" in centre


def test_deny_prompts_cover_the_agi_reasons():
    reasons = {value for name, value in vars(v).items() if name.isupper() and isinstance(value, str)
               and name in ("UNKNOWN_DEVICE", "OUTSIDE_HOURS", "NO_APPOINTMENT", "TOO_EARLY", "TOO_LATE", "BAD_CODE",
                            "CODE_LOCKED")}
    # and the dialplan's own: a waiting caller whose slot ended; wrong_centre (issue 4's list)
    assert set(render.DENY_REASONS) == reasons | {"governor_unavailable", "wrong_centre"}
    from provisioning import prompts
    assert all(prompts.REASON_PROMPTS[reason] in prompts.PROMPTS for reason in render.DENY_REASONS)


def test_centre_cannot_dial_anything_else(files):
    centre = options(section(files["extensions.conf"], "from-centre"))
    extens = [value.split(",")[0] for key, value in centre if key == "exten"]
    assert extens == ["governor", "100", "*43", "_[0-9a-zA-Z*#+]!", "i"]
    catch_all = [value for key, value in centre if key == "exten" and value.startswith("_")]
    assert catch_all == ["_[0-9a-zA-Z*#+]!,1,Hangup(21)"]
    governor = options(section(files["extensions.conf"], "from-governor"))
    assert [value for key, value in governor if key == "exten"][0] == "*43,1,Goto(tawasul-internal,echo,1)"


def test_no_governor_endpoint_means_connect_is_denied(settings, layout):
    rows = Rows(devices=tuple(d for d in ROWS.devices if d.kind != "governor_desk"), centres=ROWS.centres)
    files = render.render_all(dataclasses.replace(settings, webrtc_port=0), rows, AMI_SECRETS, layout)
    from_centre = files["extensions.conf"].split("[from-centre]")[1].split("\n[")[0]
    assert "Dial(" not in from_centre
    assert "n(connect),Goto(deny)" in files["extensions.conf"]
    assert "governor-console" not in files["pjsip.conf"] and "tlsenable" not in files["http.conf"]
    assert validate(files) == []


def test_without_a_desk_phone_the_console_takes_the_sessions(settings, layout):
    rows = Rows(devices=tuple(d for d in ROWS.devices if d.kind != "governor_desk"), centres=ROWS.centres)
    files = render.render_all(settings, rows, AMI_SECRETS, layout)
    from_centre = files["extensions.conf"].split("[from-centre]")[1].split("\n[")[0]
    assert "Dial(PJSIP/governor-console,30," in from_centre
    assert "member => Local/governor-console@tawasul-line-member/n" in files["queues.conf"]
    assert validate(files) == []


def test_the_console_endpoint_is_webrtc_with_no_secret_in_any_file(files):
    console = dict(options(section(files["pjsip.conf"], "governor-console")))
    assert console["webrtc"] == "yes" and console["transport"] == "transport-wss"
    assert console["allow"] == "!all,opus,ulaw,vp8" and console["direct_media"] == "no"
    # its auth lives in AstDB (per console page), never in pjsip.conf
    assert "[governor-console]\ntype = auth" not in files["pjsip.conf"]
    assert "auth = astdb,tawasul" in files["sorcery.conf"]
    http = dict(options(section(files["http.conf"], "general")))
    assert "bindaddr" not in http and http["tlsenable"] == "yes"  # no plain HTTP listener
    assert validate(files) == []


def test_validate_refuses_a_console_endpoint_that_is_not_webrtc(files):
    broken = dict(files)
    broken["pjsip.conf"] = files["pjsip.conf"].replace("webrtc = yes", "webrtc = no").replace(
        "transport = transport-wss", "transport = transport-tls")
    errors = validate(broken)
    assert any("governor-console: webrtc must be yes" in e for e in errors), errors
    assert any("governor-console: transport must be the secure websocket" in e for e in errors), errors


def test_no_devices_without_tls_is_fine_but_devices_need_tls(settings):
    render.render_all(settings, Rows(), AMI_SECRETS)
    with pytest.raises(render.RenderError, match="certificate"):
        render.render_all(settings, ROWS, AMI_SECRETS)


@pytest.mark.parametrize("bad, message", [
    (dataclasses.replace(ROWS.devices[0], sip_user="bad user]"), "SIP user"),
    (dataclasses.replace(ROWS.devices[0], password_md5=""), "digest"),
])
def test_bad_rows_are_refused(settings, layout, bad, message):
    with pytest.raises(render.RenderError, match=message):
        render.render_all(settings, Rows(devices=(bad,), centres=ROWS.centres), AMI_SECRETS, layout)


def test_bad_network_is_refused(settings, layout):
    centres = (dataclasses.replace(ROWS.centres[0], networks=("10.0.0.0/33",)),)
    with pytest.raises(render.RenderError, match="allowed network"):
        render.render_all(settings, Rows(devices=ROWS.devices[:1], centres=centres), AMI_SECRETS, layout)


def test_thousand_devices_render_quickly(settings, layout):
    import time

    centres = tuple(CentreRow(f"C{i:03d}", f"Centre {i}", ("10.0.0.0/8",)) for i in range(100))
    devices = tuple(DeviceRow(f"centre-c{i:03d}-{j}", "centre_phone", md5_digest("x", "y"), f"C{i:03d}")
                    for i in range(100) for j in range(10))
    started = time.monotonic()
    files = render.render_all(settings, Rows(devices=devices, centres=centres), AMI_SECRETS, layout)
    assert validate(files) == []
    assert time.monotonic() - started < 3
    assert files["pjsip.conf"].count("(endpoint-centre,") == 1000
