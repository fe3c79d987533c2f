"""Who runs what, and who may read what.

Started as root, Tawasul runs nothing as root: Asterisk runs as the `asterisk` system user, every
Python service (web, FastAGI, call watcher, ...) as the `tawasul` system user. Both are created
here when missing (`useradd --system`, no login shell, no home). Started as anyone else, everything
runs as that user.

Who may read what:

- the state folder (`var/`): owner `tawasul`, mode 0700; nothing in it for the group or others
  (the database and the secrets 0600). Asterisk never reads it: its own instance folder is apart.
- Asterisk's instance folder (provisioning/runtime.py): group `asterisk`, nothing for others.
  `tawasul` owns what it writes and Asterisk only reads (etc, keys, moh: 2750, files 0640);
  `asterisk` owns what Asterisk writes (log, spool, lib, run, cache: 2750; the recorded messages'
  folder 2770, since the call watcher files and deletes them). `tawasul` is in the `asterisk` group
  to read Asterisk's pid file, logs and recordings.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "tawasul"
ASTERISK_USER = "asterisk"  # and its group
NOLOGIN = "/usr/sbin/nologin"
NO_HOME = "/nonexistent"


class PrivilegeError(RuntimeError):
    """A system user could not be made, or a folder cannot be reached by it."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    extra_gids: tuple[int, ...] = ()

    def popen_kwargs(self) -> dict:
        """subprocess.Popen arguments that run the child as this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.extra_gids)}


def is_root() -> bool:
    return os.geteuid() == 0


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _useradd(name: str, *extra: str) -> None:
    if _user_exists(name):
        return
    args = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", NO_HOME,
            "--shell", NOLOGIN, "--comment", f"Tawasul {name}", *extra, name]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0 and not _user_exists(name):  # another `tawasul up` made it first: fine
        raise PrivilegeError(f"useradd {name} failed: {result.stderr.strip()}")


def ensure_users() -> None:
    """Create the `asterisk` and `tawasul` system users if missing; `tawasul` in group `asterisk`.
    Idempotent. Root only."""
    _useradd(ASTERISK_USER)
    _useradd(SERVICE_USER)
    if SERVICE_USER not in grp.getgrnam(ASTERISK_USER).gr_mem:
        result = subprocess.run(["usermod", "--append", "--groups", ASTERISK_USER, SERVICE_USER],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PrivilegeError(f"usermod {SERVICE_USER}: {result.stderr.strip()}")


def service_account(with_asterisk_group: bool = False) -> Account | None:
    """The account Python services run as: `tawasul` when started as root (made if missing), else
    None (run as the current user). `with_asterisk_group`: also in group asterisk (reads Asterisk's
    files)."""
    if not is_root():
        return None
    ensure_users()
    entry = pwd.getpwnam(SERVICE_USER)
    extra = (grp.getgrnam(ASTERISK_USER).gr_gid,) if with_asterisk_group else ()
    return Account(SERVICE_USER, entry.pw_uid, entry.pw_gid, extra)


def asterisk_account() -> Account | None:
    """The account Asterisk runs as: `asterisk` when started as root (made if missing), else None."""
    if not is_root():
        return None
    ensure_users()
    entry = pwd.getpwnam(ASTERISK_USER)
    return Account(ASTERISK_USER, entry.pw_uid, grp.getgrnam(ASTERISK_USER).gr_gid)


def _chown(path: Path, account: Account | None, gid: int | None = None) -> None:
    if account is not None:
        os.lchown(path, account.uid, account.gid if gid is None else gid)


def secure_tree(top: Path, owner: Account | None, gid: int | None = None, dir_mode: int = 0o700,
                file_mask: int = 0o700) -> None:
    """`top` and everything under it (symlinks left alone): owned by `owner` (if given; group `gid`
    or the owner's), folders `dir_mode`, files keeping only the bits in `file_mask`."""
    top = Path(top)
    _chown(top, owner, gid)
    os.chmod(top, dir_mode)
    for folder, dirs, files in os.walk(top):
        for name in dirs:
            path = Path(folder) / name
            if not path.is_symlink():
                _chown(path, owner, gid)
                os.chmod(path, dir_mode)
        for name in files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            _chown(path, owner, gid)
            mode = path.lstat().st_mode & 0o7777
            if mode & ~file_mask:
                os.chmod(path, mode & file_mask)


def secure_state(state_dir: Path) -> None:
    """Make the state folder private to the service user: 0700, nothing for the group or others,
    owned by `tawasul` when run as root (fixes an older, world-readable var/)."""
    state_dir = Path(state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secure_tree(state_dir, service_account())
    except PermissionError as exc:
        raise PrivilegeError(f"cannot make the state folder private: {exc.filename} belongs to another user "
                             f"(run as root, or as the user who owns {state_dir})") from None


def check_reachable(account: Account, *paths: Path) -> None:
    """Refuse early, in one line, when `account` cannot reach one of `paths` (a parent folder
    closed to it, e.g. under /root or pytest's 0700 temporary folder)."""
    for target in paths:
        target = Path(target).resolve()
        for folder in reversed(target.parents):
            st = folder.stat()
            if st.st_uid == account.uid:
                ok = st.st_mode & 0o100
            elif st.st_gid == account.gid or st.st_gid in account.extra_gids:
                ok = st.st_mode & 0o010
            else:
                ok = st.st_mode & 0o001
            if not ok:
                raise PrivilegeError(
                    f"user {account.name} cannot reach {target}: {folder} is closed to it (mode "
                    f"{st.st_mode & 0o777:o}); install Tawasul and its state folder where services can reach "
                    f"them (a venv made with /usr/bin/python3, not one under /root)")


def which_tawasul() -> str:
    """The installed `tawasul` executable beside this Python, else the one on PATH."""
    import sys

    beside = Path(sys.executable).parent / "tawasul"
    if beside.is_file():
        return str(beside)
    found = shutil.which("tawasul")
    if not found:
        raise PrivilegeError("no `tawasul` executable found beside this Python or on PATH")
    return found
