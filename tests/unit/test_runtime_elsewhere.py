"""`asterisk_instance`: Asterisk runs in another container (docker/compose.yaml) and this process only
writes its configuration into the shared instance folder, at the same path on both sides."""
from __future__ import annotations

import dataclasses
import socket

import pytest

from provisioning import runtime
from provisioning.rows import Rows
from tawasul.settings import Settings, load


@pytest.fixture
def settings(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there: no Asterisk
    return dataclasses.replace(Settings(), state_dir=tmp_path / "state", asterisk_cache=tmp_path / "no-cache",
                               asterisk_instance=str(tmp_path / "instance"), ami_port=port)


def test_the_setting_comes_from_the_environment(tmp_path):
    loaded = load(environ={"TAWASUL_STATE_DIR": str(tmp_path), "TAWASUL_ASTERISK_INSTANCE": "/srv/tawasul-asterisk"})
    assert loaded.asterisk_instance == "/srv/tawasul-asterisk"
    assert load(environ={"TAWASUL_STATE_DIR": str(tmp_path)}).asterisk_instance == ""


def test_configuration_goes_to_the_shared_folder_with_debians_paths(settings, tmp_path):
    rt = runtime.ensure_installed(settings)  # no Asterisk here, nothing installed into the cache
    assert rt.root is None and rt.host_dir == tmp_path / "instance"
    assert not (tmp_path / "no-cache").exists()
    rt.render_and_write(rows=Rows())
    conf = (rt.host_dir / "etc" / "asterisk.conf").read_text()
    assert f"astetcdir => {tmp_path / 'instance' / 'etc'}" in conf
    assert "/usr/lib/x86_64-linux-gnu/asterisk/modules" in conf and "astdatadir => /usr/share/asterisk" in conf
    assert (settings.state_dir / "asterisk").resolve() == rt.host_dir  # the call watcher finds messages there
    assert rt.sounds_dir("ar") == runtime.Path("/usr/share/asterisk/sounds/ar")


def test_it_is_never_started_or_driven_from_here(settings):
    rt = runtime.ensure_installed(settings)
    assert not rt.is_running() and not rt.status().running  # its AMI does not answer
    with pytest.raises(runtime.AsteriskRuntimeError, match="its own container"):
        rt.cli("core show version")
    with pytest.raises(runtime.AsteriskRuntimeError, match="its own container"):
        rt.start()


def test_running_means_its_ami_answers(settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        rt = runtime.ensure_installed(dataclasses.replace(settings, ami_port=listener.getsockname()[1]))
        assert rt.is_running() and rt.status().running


def test_the_render_names_only_the_instance_folder(settings):
    layout = runtime.ensure_installed(settings).layout()
    assert layout.instance_dir == settings.asterisk_instance
