"""The base Asterisk configuration: rendered purely from Settings, written atomically."""
from __future__ import annotations

import dataclasses
import re
import stat

import pytest

from provisioning import render, writer
from tawasul.settings import Settings

SECRETS = {"web": "s3cret-Web_42", "watch": "s3cret-Watch_42", "provision": "s3cret-Provision_42"}


@pytest.fixture
def settings(tmp_path):
    return dataclasses.replace(Settings(), state_dir=tmp_path / "state", ami_port=15038, rtp_start=30000, rtp_end=30999)


def section(text: str, name: str) -> str:
    """The body of one [section] of a rendered config file."""
    match = re.search(rf"(?ms)^\[{re.escape(name)}\][^\n]*\n(.*?)(?=^\[|\Z)", text)
    assert match, f"no [{name}] section"
    return match.group(1)


def options(body: str) -> list[tuple[str, str]]:
    """`key = value` / `key => value` lines of a section, comments dropped."""
    found = []
    for line in body.splitlines():
        line = line.split(";", 1)[0].strip()
        if line:
            key, _, value = re.split(r"\s*(=>?)\s*", line, maxsplit=1)
            found.append((key, value))
    return found


def test_render_is_pure_and_deterministic(settings):
    first = render.render_base(settings, SECRETS)
    second = render.render_base(settings, SECRETS)
    assert first == second
    assert set(first) == set(render.BASE_FILES)
    assert not settings.state_dir.exists()  # rendering touches nothing


def test_every_file_names_its_origin(settings):
    for name, text in render.render_base(settings, SECRETS).items():
        assert text.startswith(f"; {name} -- rendered by Tawasul"), name
        assert text.endswith("\n")


def test_manager_binds_to_loopback_with_one_user_a_process(settings):
    manager = render.render_base(settings, SECRETS)["manager.conf"]
    general = dict(options(section(manager, "general")))
    assert general["enabled"] == "yes"
    assert general["bindaddr"] == "127.0.0.1"
    assert general["port"] == "15038"
    assert general["webenabled"] == "no"
    rights = {}
    for user, secret in SECRETS.items():
        found = options(section(manager, f"{settings.ami_user}-{user}"))
        assert ("secret", secret) in found
        assert ("deny", "0.0.0.0/0.0.0.0") in found
        assert ("permit", "127.0.0.1/255.255.255.255") in found
        values = dict(found)
        rights[user] = (set(filter(None, values.get("read", "").split(","))), set(values["write"].split(",")))
        assert not {"command", "config", "all"} & rights[user][1]
    assert rights["web"] == (set(), {"originate", "call", "reporting"})
    assert rights["watch"] == ({"call", "user", "agent", "system"}, {"reporting"})
    assert rights["provision"] == (set(), {"system"})
    assert manager.count("secret =") == 3


def test_manager_conf_is_written_0600_and_the_rest_0640(settings, tmp_path):
    files = render.render_base(settings, SECRETS)
    changed = writer.write_files(tmp_path / "etc", files, private=render.PRIVATE_FILES)
    assert len(changed) == len(files)
    assert stat.S_IMODE((tmp_path / "etc" / "manager.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "etc" / "pjsip.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "etc" / "extensions.conf").stat().st_mode) == 0o600  # the FastAGI secret
    assert SECRETS["provision"] in (tmp_path / "etc" / "manager.conf").read_text()
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == sorted(files)  # no temporary files left
    assert writer.write_files(tmp_path / "etc", files, private=render.PRIVATE_FILES) == []  # unchanged


def test_write_atomic_replaces_and_fixes_mode(tmp_path):
    path = tmp_path / "a.conf"
    path.write_text("old")
    path.chmod(0o644)
    assert writer.write_atomic(path, "new", 0o600)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("module", render.FORBIDDEN_MODULES + ("func_shell",))
def test_modules_conf_never_loads_forbidden_modules(settings, module):
    modules = render.render_base(settings, SECRETS)["modules.conf"]
    body = options(section(modules, "modules"))
    assert ("autoload", "no") in body
    loaded = {value.removesuffix(".so") for key, value in body if key in ("load", "preload", "require", "preload-require")}
    assert module not in loaded
    assert ("noload", module + ".so") in body
    assert {"chan_pjsip", "res_pjsip", "res_rtp_asterisk", "res_srtp", "res_agi", "app_dial", "pbx_config"} <= loaded


def test_pjsip_without_certificate_has_no_transport(settings):
    pjsip = render.render_base(settings, SECRETS)["pjsip.conf"]
    glob = dict(options(section(pjsip, "global")))
    assert glob["user_agent"] == "Tawasul"
    assert glob["endpoint_identifier_order"] == "ip,username"
    assert "anonymous" not in pjsip.lower().replace("no anonymous endpoint", "")
    # No plain SIP: Asterisk would let a phone's user name and password register over it.
    assert re.findall(r"(?m)^protocol = (\w+)", pjsip) == []


def test_pjsip_plain_udp_only_for_the_load_test_on_loopback(settings):
    pjsip = render.render_base(dataclasses.replace(settings, load_test=True), SECRETS)["pjsip.conf"]
    assert re.findall(r"(?m)^protocol = (\w+)", pjsip) == ["udp"]
    assert "bind = 127.0.0.1:5060" in pjsip


def test_pjsip_with_certificate_adds_tls(settings):
    layout = dataclasses.replace(render.default_layout(settings), tls_cert="/k/asterisk.crt", tls_key="/k/asterisk.key")
    pjsip = render.render_base(dataclasses.replace(settings, sip_tls_port=15061), SECRETS, layout)["pjsip.conf"]
    tls = dict(options(section(pjsip, "transport-tls")))
    assert tls["protocol"] == "tls"
    assert tls["bind"] == "127.0.0.1:15061"
    assert tls["cert_file"] == "/k/asterisk.crt" and tls["priv_key_file"] == "/k/asterisk.key"


def test_rtp_logger_and_dialplan(settings):
    files = render.render_base(settings, SECRETS)
    rtp = dict(options(section(files["rtp.conf"], "general")))
    assert (rtp["rtpstart"], rtp["rtpend"]) == ("30000", "30999")
    logfiles = dict(options(section(files["logger.conf"], "logfiles")))
    assert logfiles["security"] == "security"
    assert "messages" in logfiles and "console" in logfiles
    assert "Echo()" in section(files["extensions.conf"], "tawasul-internal")
    assert "Hangup" in section(files["extensions.conf"], "default")


def test_each_state_folder_gets_its_own_directories(settings, tmp_path):
    other = dataclasses.replace(settings, state_dir=tmp_path / "other")
    assert render.instance_id(settings.state_dir) != render.instance_id(other.state_dir)
    conf = render.render_base(settings, SECRETS)["asterisk.conf"]
    dirs = dict(options(section(conf, "directories")))
    base = render.default_layout(settings).instance_dir
    for key in ("astetcdir", "astrundir", "astlogdir", "astspooldir", "astdbdir", "astkeydir"):
        assert dirs[key].startswith(base + "/"), key
    assert "[directories](!)" not in conf


@pytest.mark.parametrize("secret", ["", "two\nlines", "semi;colon", " padded"])
def test_unsafe_secret_is_refused(settings, secret):
    with pytest.raises(ValueError):
        render.render_base(settings, {**SECRETS, "watch": secret})


def test_every_ami_user_needs_its_own_secret(settings):
    with pytest.raises(ValueError, match="AMI secrets needed"):
        render.render_base(settings, {"web": "a-secret"})


def test_templates_exist_for_every_base_file():
    for name in render.BASE_FILES:
        assert render._environment().get_template(f"{name}.j2")  # from the asterisk_conf package
