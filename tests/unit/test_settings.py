import secrets
from pathlib import Path

import pytest

from tawasul.settings import DEFAULT_SECRET_KEY, SettingsError, generated_secret, load


def test_layers_apply_in_order_defaults_file_env_flags(tmp_path):
    (tmp_path / "tawasul.toml").write_text('web_port = 9000\nagi_port = 9001\nami_port = 9002\n')
    env = {"TAWASUL_STATE_DIR": str(tmp_path), "TAWASUL_AGI_PORT": "9101", "TAWASUL_AMI_PORT": "9102"}
    settings = load({"ami_port": 9202}, environ=env)
    assert settings.sip_tls_port == 5061          # default
    assert settings.web_port == 9000              # file
    assert settings.agi_port == 9101              # environment beats file
    assert settings.ami_port == 9202              # flag beats environment
    assert settings.state_dir == Path(tmp_path)


def test_defaults_bind_to_loopback():
    settings = load(environ={})
    assert {settings.web_host, settings.agi_host, settings.ami_host, settings.sip_host} == {"127.0.0.1"}
    assert (settings.web_port, settings.agi_port, settings.ami_port, settings.sip_tls_port) == (8080, 4573, 5038, 5061)


def test_bad_values_and_unknown_settings_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="web_port"):
        load(environ={"TAWASUL_WEB_PORT": "eighty"})
    (tmp_path / "tawasul.toml").write_text("web_prot = 1\n")
    with pytest.raises(SettingsError, match="unknown settings web_prot"):
        load(environ={"TAWASUL_STATE_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="demo"):
        load(environ={"TAWASUL_DEMO": "maybe"})
    with pytest.raises(SettingsError, match="web_proxies"):
        load(environ={"TAWASUL_WEB_PROXIES": "-1"})


def test_production_refuses_the_default_secret_key():
    with pytest.raises(SettingsError, match="TAWASUL_SECRET_KEY"):
        load(environ={}).require_production_secret()
    load(environ={"TAWASUL_DEMO": "1"}).require_production_secret()
    settings = load(environ={"TAWASUL_SECRET_KEY": secrets.token_urlsafe(32)})
    assert settings.secret_key != DEFAULT_SECRET_KEY
    settings.require_production_secret()
    for _ in range(200):  # any random key of 32 bytes, as hex too
        load(environ={"TAWASUL_SECRET_KEY": secrets.token_hex(32)}).require_production_secret()
        load(environ={"TAWASUL_SECRET_KEY": secrets.token_urlsafe(32)}).require_production_secret()


@pytest.mark.parametrize("key", ["x" * 64, "changeme", "correct-horse-battery-staple", "0123456789abcdef" * 4,
                                 "correct-horse-battery-staple-correct-horse"])
def test_any_secret_key_is_accepted_outside_demo_mode_is_closed(key):
    """Review finding 9: a short or plain key is refused outside demo mode, with how to make a good one."""
    with pytest.raises(SettingsError, match="token_urlsafe"):
        load(environ={"TAWASUL_SECRET_KEY": key}).require_production_secret()
    load(environ={"TAWASUL_SECRET_KEY": key, "TAWASUL_DEMO": "1"}).require_production_secret()


def test_generated_secrets_are_private_and_stable(tmp_path):
    settings = load({"state_dir": tmp_path}, environ={})
    first = generated_secret(settings, "ami")
    assert generated_secret(settings, "ami") == first
    assert (tmp_path / "secrets" / "ami").stat().st_mode & 0o077 == 0


def test_agi_allowed_peers_are_addresses_or_cidrs():
    from tawasul.settings import peer_networks

    assert [str(n) for n in peer_networks(load(environ={}).agi_allowed_peers)] == ["127.0.0.1/32", "::1/128"]
    assert [str(n) for n in peer_networks(" 10.20.0.5, 10.30.0.0/24 ,")] == ["10.20.0.5/32", "10.30.0.0/24"]
    for bad in ("asterisk.internal", "10.0.0.300", " , "):
        with pytest.raises(SettingsError, match="agi_allowed_peers"):
            load(environ={"TAWASUL_AGI_ALLOWED_PEERS": bad})
