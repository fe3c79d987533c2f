"""Who may read what: the state folder closed to others, a folder the service user cannot reach
refused in one line, the Asterisk root's user given the host's ids."""
import dataclasses
import os
import stat
from pathlib import Path

import pytest

from provisioning import privilege, runtime
from tawasul.settings import Settings, generated_secret

NOBODY = privilege.Account("nobody", 65534, 65534)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_secure_state_closes_an_older_world_readable_state_folder(tmp_path):
    state = tmp_path / "var"
    (state / "log").mkdir(parents=True)
    (state / "tawasul.db").write_text("db")
    (state / "log" / "web.log").write_text("log")
    (state / "asterisk").symlink_to(tmp_path)  # the instance link: left alone, as is its target
    for path, bits in ((state, 0o755), (state / "log", 0o777), (state / "tawasul.db", 0o644),
                       (state / "log" / "web.log", 0o666), (tmp_path, 0o755)):
        path.chmod(bits)
    privilege.secure_state(state)
    assert (mode(state), mode(state / "log"), mode(state / "tawasul.db"), mode(state / "log" / "web.log")) == \
        (0o700, 0o700, 0o600, 0o600)
    assert mode(tmp_path) == 0o755
    if privilege.is_root():  # the service user's, made if missing
        assert {p.lstat().st_uid for p in (state, state / "tawasul.db")} == {privilege.service_account().uid}


def test_check_reachable_names_the_closed_folder(service_tmp):
    closed = service_tmp / "closed"
    (closed / "var").mkdir(parents=True)
    closed.chmod(0o700)
    with pytest.raises(privilege.PrivilegeError, match=f"nobody cannot reach .*: {closed} is closed"):
        privilege.check_reachable(NOBODY, closed / "var")
    closed.chmod(0o711)
    privilege.check_reachable(NOBODY, closed / "var")


def test_a_secret_made_by_root_belongs_to_the_state_folders_owner(tmp_path):  # run as root, as CI does
    settings = dataclasses.replace(Settings(), state_dir=tmp_path)
    os.chown(tmp_path, 65534, 65534)
    generated_secret(settings, "ami")
    assert {(p.stat().st_uid, mode(p)) for p in (settings.secrets_dir, settings.secrets_dir / "ami")} == \
        {(65534, 0o700), (65534, 0o600)}


def test_the_roots_asterisk_user_takes_the_hosts_ids(tmp_path):
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nasterisk:x:101:101:Asterisk PBX daemon:/var/lib/asterisk:/usr/sbin/nologin\n")
    group.write_text("dialout:x:20:asterisk\nasterisk:x:101:\n")
    assert runtime._set_ids(group, "asterisk:x:995:") == 101
    assert runtime._set_ids(passwd, "asterisk:x:999:995:Asterisk:/var/lib/asterisk:/usr/sbin/nologin") == 101
    assert "asterisk:x:999:995:" in passwd.read_text() and "root:x:0:0:" in passwd.read_text()
    assert group.read_text() == "dialout:x:20:asterisk\nasterisk:x:995:\n"
    assert runtime._set_ids(group, "asterisk:x:995:") is None  # already so: nothing written
    with pytest.raises(runtime.AsteriskRuntimeError, match="taken by root"):
        runtime._set_ids(passwd, "asterisk:x:0:0:Asterisk:/var/lib/asterisk:/usr/sbin/nologin")
