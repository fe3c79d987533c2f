"""`tawasul up` started as root, as `make run` and CI start it: no process of the running system
is root but the supervisor itself, and nothing in the state folder or Asterisk's instance is open
to others (an older world-readable state folder is closed on start)."""
import grp
import os
import pwd
import signal
import stat
from pathlib import Path

import pytest

from provisioning import runtime as asterisk_runtime
from tests.asterisk_fixture import assert_stopped_clean, make_settings
from tests.integration.test_up import start_up
from tests.live import free_port

pytestmark = pytest.mark.integration


def processes_under(parent: int) -> list[tuple[int, str, tuple[int, ...], str]]:
    """(pid, user, (real, effective, saved, fs uid), command) of every descendant of `parent`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(parent, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        uids = tuple(int(u) for u in next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:])
        found.append((pid, pwd.getpwuid(uids[1]).pw_name, uids, command.strip()[:120]))
    return found


def open_entries(top: Path) -> list[str]:
    """Every file or folder under `top` (symlinks aside) that others may read, write or enter."""
    bad = []
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files, ""] if folder == str(top) else [*dirs, *files]:
            path = Path(folder) / name
            st = path.lstat()
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o007:
                bad.append(f"{stat.filemode(st.st_mode)} {pwd.getpwuid(st.st_uid).pw_name} {path}")
    return bad


def test_nothing_runs_as_root_and_nothing_is_open_to_others(service_tmp):
    state = service_tmp / "var"
    (state / "log").mkdir(parents=True)
    state.chmod(0o755)  # as older versions left it
    (state / "log" / "old.log").write_text("from an older version\n")
    (state / "log" / "old.log").chmod(0o644)
    ports = {"web_port": free_port(), "agi_port": free_port(), "ami_port": free_port(),
             "sip_udp_port": free_port(), "sip_tls_port": free_port(), "rtp_start": 33000, "rtp_end": 33999}
    runtime = asterisk_runtime.ensure_installed(make_settings(state, **ports))

    process, _banner = start_up(state, ports)
    try:
        running = processes_under(process.pid)
        table = "\n".join(f"{pid:7} {user:9} {uids} {command}" for pid, user, uids, command in running)
        assert [p for p in running if 0 in p[2]] == [], "processes running as root:\n" + table
        kinds = {("asterisk" if command.split()[0].endswith("/asterisk") else "python", user)
                 for _pid, user, _uids, command in running}
        assert kinds == {("asterisk", "asterisk"), ("python", "tawasul")}, table
        assert len(running) >= 6, table  # Asterisk, FastAGI, call watcher, gunicorn and its 2 workers

        for top in (state, state / "asterisk"):
            assert open_entries(top.resolve()) == [], f"open to others under {top}"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        tawasul_uid = pwd.getpwnam("tawasul").pw_uid
        for path in (state / "tawasul.db", *(state / "secrets").iterdir(), state / "certs" / "ca.key"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == tawasul_uid, path
        # Asterisk reads its configuration and key through its group, and writes only its own folders.
        asterisk_gid = grp.getgrnam("asterisk").gr_gid
        key = state / "asterisk" / "keys" / "asterisk.key"
        assert (stat.S_IMODE(key.stat().st_mode), key.stat().st_gid) == (0o640, asterisk_gid)
        assert (state / "asterisk" / "lib" / "astdb.sqlite3").stat().st_uid == pwd.getpwnam("asterisk").pw_uid
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert_stopped_clean(runtime)
    runtime.destroy()
