"""The local Asterisk runtime: install, start, stop, status, cli.

Where the host has Asterisk 20 or newer it is used as it is. Elsewhere (a bare Debian 12)
Asterisk 22 from Debian unstable is installed once into a root filesystem in the
machine-wide cache (`settings.asterisk_cache / "sid-root"`), shared by every clone.

Every state folder gets its own Asterisk *instance*: its own etc, run (control socket),
log, spool, lib (astdb) and keys folders under `/srv/tawasul/<id>` inside the root
filesystem (or `<asterisk_cache>/instances/<id>` with a host Asterisk), where `<id>` is a
short hash of the absolute state folder. `<state_dir>/asterisk` is a symlink to it.
So a `make run` instance and a test instance run side by side (on different ports).

Started as root, Asterisk runs as the `asterisk` system user (`-U asterisk -G asterisk`; the
helper drops to it before exec, so the death signal below survives), and the root filesystem's
`asterisk` user and group get the host's ids, so files keep one owner on both sides
(provisioning/privilege.py says who owns which instance folder).

Asterisk in the root filesystem runs in a private mount namespace: /proc is mounted
inside that namespace only, so no mount is ever visible on the host or left behind when
Asterisk stops or crashes. Asterisk dies with the process that started it
(PR_SET_PDEATHSIG), so killing the supervisor never leaves an orphan.

Running Asterisk under a supervisor (`tawasul up`)::

    rt = runtime.ensure_installed(settings)
    rt.render_and_write(rows=rows)              # rows: provisioning.rows.load_rows(...), or none
    proc = subprocess.Popen(rt.popen_args(), stdin=subprocess.DEVNULL)
    rt.wait_booted(proc)                         # optional: blocks until fully booted
    ...
    proc.send_signal(signal.SIGTERM)             # the PID *is* Asterisk: it shuts down cleanly
    proc.wait(timeout=20)                        # then proc.kill() if it did not

`popen_args()` runs a tiny helper (this file, stdlib only) that sets up the namespace and
then exec()s Asterisk in the foreground, so the child's PID is Asterisk's own. Spawn it
from the thread that stays alive (the main thread): the death signal follows that thread.

From a shell: `tawasul asterisk {install,start,stop,status,cli CMD}` (provisioning/cli.py).

With the setting `asterisk_instance`, Asterisk runs elsewhere (its own container, docker/compose.yaml)
and that folder is its instance, at the same path on both sides: configuration, keys and music are
written into it and reloaded over AMI as usual, but Asterisk is never started, stopped or asked over
its CLI from here, and "running" means its AMI answers.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

try:
    from provisioning import privilege
except ImportError:  # run as a file (`python -I runtime.py exec`): the helper needs no more than the stdlib
    privilege = None

MIN_HOST_MAJOR = 20
ROOT_NAME = "sid-root"
MARKER_NAME = "sid-root.ready"  # written last: a root without it is half-built and gets rebuilt
LOCK_NAME = "install.lock"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
INSTANCE_BASE = PurePosixPath("/srv/tawasul")  # inside the root filesystem
INSTANCE_DIRS = ("etc", "run", "log", "spool", "lib", "cache", "keys")
ASTERISK_WRITES = ("run", "log", "spool", "lib", "cache")  # owned by Asterisk's user; the rest only read
THIS_FILE = Path(__file__).resolve()


class AsteriskRuntimeError(RuntimeError):
    """Asterisk could not be installed, started, reached or stopped."""


def _progress(message: str) -> None:
    print(f"[asterisk] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- install


def host_asterisk() -> str | None:
    """The host's `asterisk` binary if it is version 20 or newer."""
    binary = shutil.which("asterisk")
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "-V"], check=False, capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Asterisk (\d+)\.", out)
    return binary if match and int(match.group(1)) >= MIN_HOST_MAJOR else None


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, from /proc/mounts."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1])  # \040: space
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _remove_root(root: Path) -> None:
    for point in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    left = mounts_under(root)
    if left:
        raise AsteriskRuntimeError(f"refusing to delete {root}: still mounted inside: {', '.join(left)}")
    shutil.rmtree(root)


def _debian_mirror() -> str:
    """The Debian mirror apt already uses (deb822 or one-line sources), else deb.debian.org."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = source.read_text(encoding="utf-8")
        except OSError:
            continue
        for match in re.finditer(r"(?m)^(?:URIs:|deb)\s+(?:\[[^\]]*\]\s+)?(https?://\S+)", text):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def _run_logged(args: list[str], log: Path, what: str, env: dict | None = None) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(args)}\n".encode())
        out.flush()
        result = subprocess.run(
            args, check=False, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise AsteriskRuntimeError(f"{what} failed (exit {result.returncode}); end of {log}:\n{tail}")


def _ensure_debootstrap(log: Path) -> None:
    if shutil.which("debootstrap"):
        return
    _progress("installing debootstrap with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"]
    try:
        _run_logged(install, log, "apt-get install debootstrap", env)
    except AsteriskRuntimeError:
        _run_logged(["apt-get", "update"], log, "apt-get update", env)
        _run_logged(install, log, "apt-get install debootstrap", env)


def _build_root(root: Path, log: Path) -> None:
    started = time.monotonic()
    _progress(f"Installing Asterisk 22 into {root} (first run, about a minute)")
    if root.exists() or root.is_symlink():
        _progress(f"removing the half-built {root}")
        _remove_root(root)
    _ensure_debootstrap(log)
    mirror = _debian_mirror()
    _progress(f"debootstrap sid from {mirror} (log: {log})")
    _run_logged(["debootstrap", "--variant=minbase", "sid", str(root), mirror], log, "debootstrap")
    # Never let a package's maintainer script start a service inside the root.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C", "HOME": "/root"}
    _progress("apt-get install asterisk (inside the root)")
    install = ["chroot", str(root), "apt-get", "install", "-y", "--no-install-recommends", "asterisk"]
    try:
        _run_logged(install, log, "apt-get install asterisk", env)
    except AsteriskRuntimeError:
        _run_logged(["chroot", str(root), "apt-get", "update"], log, "apt-get update (root)", env)
        _run_logged(install, log, "apt-get install asterisk", env)
    _run_logged(["chroot", str(root), "apt-get", "clean"], log, "apt-get clean", env)
    _prune_modules(root)
    _progress(f"Asterisk installed in {time.monotonic() - started:.0f} s")


def _prune_modules(root: Path) -> None:
    """Delete the forbidden modules (tawasul.asterisk_modules) from the root, so not even
    `module load` finds them."""
    from tawasul.asterisk_modules import so_names

    for moddir in [*root.glob("usr/lib/*/asterisk/modules"), root / "usr/lib/asterisk/modules"]:
        for name in so_names():
            (moddir / name).unlink(missing_ok=True)


def _relink_sounds(root: Path) -> None:
    """Make the root's absolute sound-folder symlinks relative: Debian's `sounds/en` points at
    /etc/alternatives/asterisk-prompt-en, which resolves inside the root but not from the host,
    where the prompts are written (generate_prompts then fails with FileExistsError). Cheap and
    idempotent; a relative link resolves the same inside the root."""
    sounds = root / "usr/share/asterisk/sounds"
    if not sounds.is_dir():
        return
    for link in sounds.iterdir():
        if not link.is_symlink() or not os.readlink(link).startswith("/"):
            continue
        inner = PurePosixPath(os.readlink(link))
        for _ in range(10):  # follow the chain as the root sees it
            host = root / inner.relative_to("/")
            if not host.is_symlink():
                break
            step = os.readlink(host)
            inner = PurePosixPath(step) if step.startswith("/") else inner.parent / step
        host = root / inner.relative_to("/")
        if not host.is_dir():
            continue  # e.g. recordings -> /var/lib/asterisk/sounds/custom before it exists
        tmp = link.with_name(f".{link.name}.{os.getpid()}.lnk")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(host, link.parent), target_is_directory=True)
        os.replace(tmp, link)


def ensure_root(cache: Path) -> Path:
    """The Asterisk root filesystem in `cache`, built on first use. Safe to run twice at once."""
    cache = Path(cache).resolve()
    root, marker = cache / ROOT_NAME, cache / MARKER_NAME
    if marker.is_file():
        if privilege.is_root():  # a service user only uses the root as it is
            _prune_modules(root)  # cheap; also covers modules added to the list after the install
            _relink_sounds(root)
            _sync_accounts(cache, root)
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / LOCK_NAME, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the marker
        if not marker.is_file():
            _build_root(root, cache / "install.log")
            version = subprocess.run(
                ["chroot", str(root), "asterisk", "-V"], capture_output=True, text=True, check=False
            ).stdout.strip()
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(version + "\n")
            os.replace(tmp, marker)
    _relink_sounds(root)
    _sync_accounts(cache, root)
    return root


def _set_ids(table: Path, line: str) -> int | None:
    """Put `line` (an /etc/passwd or /etc/group entry) in `table` in place of the entry of the same
    name; returns the id it had (None: unchanged)."""
    name, new = line.split(":")[0], int(line.split(":")[2])
    lines = table.read_text(encoding="utf-8").splitlines()
    entries = [entry.split(":") for entry in lines]
    taken = next((f[0] for f in entries if len(f) > 2 and f[2] == str(new) and f[0] != name), None)
    if taken:
        raise AsteriskRuntimeError(f"{table}: id {new} of the host's {name} is taken by {taken} in the Asterisk root")
    old = None
    for number, fields in enumerate(entries):
        if fields[0] == name:
            old = int(fields[2])
            wanted = line.split(":")
            if table.name == "group":  # keep the members
                wanted[3] = fields[3] if len(fields) > 3 else ""
            if fields == wanted:
                return None
            lines[number] = ":".join(wanted)
    if old is None:
        lines.append(line)
    tmp = table.with_name(f".{table.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, table)
    return old if old is not None else -1


def _sync_accounts(cache: Path, root: Path) -> None:
    """The root filesystem's `asterisk` user and group get the host's ids (made if missing), and
    its files owned by the old ids follow. Root only; once per machine (then nothing changes)."""
    account = privilege.asterisk_account()
    if account is None:
        return

    def ids(table: Path) -> dict[int, str]:
        return {int(f[2]): f[0] for f in (e.split(":") for e in table.read_text().splitlines()) if len(f) > 2}

    passwd, group = root / "etc/passwd", root / "etc/group"
    if (ids(passwd).get(account.uid), ids(group).get(account.gid)) == (privilege.ASTERISK_USER,) * 2:
        return  # the usual case: synced before
    with open(cache / LOCK_NAME, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        name = privilege.ASTERISK_USER
        old_gid = _set_ids(group, f"{name}:x:{account.gid}:")
        old_uid = _set_ids(passwd, f"{name}:x:{account.uid}:{account.gid}:Asterisk:/var/lib/asterisk:/usr/sbin/nologin")
        if old_uid is None and old_gid is None:
            return
        _progress(f"the Asterisk root's {name} user now has the host's ids ({account.uid}:{account.gid})")
        for folder, dirs, files in os.walk(root):
            if Path(folder) == root:
                dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
            for entry in (*dirs, *files):
                path = os.path.join(folder, entry)
                st = os.lstat(path)
                uid = account.uid if st.st_uid == old_uid else -1
                gid = account.gid if st.st_gid == old_gid else -1
                if uid != -1 or gid != -1:
                    mode = st.st_mode
                    os.lchown(path, uid, gid)
                    if not os.path.islink(path) and mode & 0o6000:
                        os.chmod(path, mode & 0o7777)  # chown clears set-id bits


def ensure_installed(settings) -> Runtime:
    """A Runtime for `settings`: the host's Asterisk 20+, else Asterisk 22 in the cached root; with
    `asterisk_instance` set, Asterisk elsewhere (another container) sharing that instance folder."""
    if settings.asterisk_instance:
        return Runtime(settings, root=None, binary="/usr/sbin/asterisk")
    binary = host_asterisk()
    if binary:
        return Runtime(settings, root=None, binary=binary)
    return Runtime(settings, root=ensure_root(settings.asterisk_cache), binary="/usr/sbin/asterisk")


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None = None
    version: str | None = None
    uptime_seconds: int | None = None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Runtime:
    """One Asterisk instance: the one for `settings.state_dir`."""

    def __init__(self, settings, root: Path | None, binary: str) -> None:
        from provisioning import render

        self.settings = settings
        self.root = Path(root).resolve() if root else None
        self.binary = binary
        self.instance_id = render.instance_id(settings.state_dir)
        self.elsewhere = bool(settings.asterisk_instance)
        if self.elsewhere:
            self.host_dir = Path(settings.asterisk_instance).resolve()
            self.inner_dir = PurePosixPath(self.host_dir)
        elif self.root:
            self.inner_dir = INSTANCE_BASE / self.instance_id  # as Asterisk sees it
            self.host_dir = self.root / self.inner_dir.relative_to("/")
        else:
            self.host_dir = Path(settings.asterisk_cache).resolve() / "instances" / self.instance_id
            self.inner_dir = PurePosixPath(self.host_dir)
        self.config_file = self.inner_dir / "etc" / "asterisk.conf"
        self.proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        where = f"root={self.root}" if self.root else f"binary={self.binary}"
        return f"<Runtime {self.instance_id} {where} dir={self.host_dir}>"

    # -- paths

    def host_path(self, inner: str | PurePosixPath) -> Path:
        """A path as Asterisk sees it -> the same file seen from the host."""
        inner = PurePosixPath(inner)
        return self.root / inner.relative_to("/") if self.root else Path(inner)

    def resolved_host_path(self, inner: str | PurePosixPath) -> Path:
        """host_path(), following symbolic links as Asterisk would inside the root filesystem
        (Debian links `sounds/en` to /etc/alternatives/..., which means nothing on the host)."""
        if not self.root:
            return Path(inner).resolve()
        current = self.root
        parts = list(PurePosixPath(inner).relative_to("/").parts)
        for _ in range(64):  # a bound against link loops
            if not parts:
                return current
            candidate = current / parts.pop(0)
            if candidate.is_symlink():
                target = PurePosixPath(os.readlink(candidate))
                if target.is_absolute():
                    current, parts = self.root, [*target.relative_to("/").parts, *parts]
                else:
                    parts = [*target.parts, *parts]
            else:
                current = candidate
        raise AsteriskRuntimeError(f"too many symbolic links resolving {inner}")

    def sounds_dir(self, language: str) -> Path:
        """Host path of Asterisk's sound folder for a language (where prompts are installed)."""
        return self.resolved_host_path(PurePosixPath(self.layout().datadir) / "sounds" / language)

    @property
    def log_dir(self) -> Path:
        return self.host_dir / "log"

    @property
    def pid_file(self) -> Path:
        return self.host_dir / "run" / "asterisk.pid"

    def _packaged_dirs(self) -> dict[str, str]:
        """astmoddir/astdatadir/astagidir of the installed package, as Asterisk sees them."""
        found = {"moddir": "", "datadir": "/usr/share/asterisk", "agidir": "/usr/share/asterisk/agi-bin"}
        if self.elsewhere:  # Debian's asterisk package, as in docker/Containerfile.asterisk
            multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
            found["moddir"] = f"/usr/lib/{multiarch}/asterisk/modules"
            return found
        conf = self.host_path("/etc/asterisk/asterisk.conf")
        # The packaged file is Asterisk's own (mode 0640): a service user rendering the configuration
        # cannot read it, and finds the same folders by looking.
        if conf.is_file() and os.access(conf, os.R_OK):
            for key, value in re.findall(r"(?m)^\s*ast(moddir|datadir|agidir)\s*=>?\s*(\S+)", conf.read_text(errors="replace")):
                if self.host_path(value).is_dir():
                    found[key] = value
        if not found["moddir"]:
            base = self.root or Path("/")
            hits = sorted(base.glob("usr/lib/**/asterisk/modules/chan_pjsip.so")) or sorted(base.glob("usr/local/lib/asterisk/modules/chan_pjsip.so"))
            if not hits:
                raise AsteriskRuntimeError(f"no Asterisk modules folder with chan_pjsip.so under {base}")
            found["moddir"] = "/" + str(hits[0].parent.relative_to(base))
        return found

    def layout(self):
        from provisioning import render

        certs = Path(self.settings.state_dir) / "certs"
        tls = (certs / render.TLS_CERT_NAME).is_file() and (certs / render.TLS_KEY_NAME).is_file()
        keys = self.inner_dir / "keys"
        return render.Layout(
            instance_dir=str(self.inner_dir),
            **self._packaged_dirs(),
            tls_cert=str(keys / render.TLS_CERT_NAME) if tls else None,
            tls_key=str(keys / render.TLS_KEY_NAME) if tls else None,
        )

    @property
    def message_dir(self) -> Path:
        """Host path of the folder where Asterisk records citizens' messages (render.MESSAGE_FOLDER)."""
        from provisioning import render

        return self.host_dir / render.MESSAGE_FOLDER

    def prepare_dirs(self) -> None:
        """Create the instance folders, the waiting line's music (made once) and the messages
        folder, and point `<state_dir>/asterisk` at them. As root, also give each folder its owner
        (provisioning/privilege.py): nothing in the instance is open to others."""
        from provisioning import prompts, render

        for name in INSTANCE_DIRS:
            (self.host_dir / name).mkdir(parents=True, exist_ok=True, mode=0o750)
        self.message_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        prompts.generate_music(self.host_dir / render.MOH_FOLDER)
        if privilege.is_root():
            self._secure_dirs()
        state_dir = Path(self.settings.state_dir).resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        link = state_dir / "asterisk"
        if link.is_symlink():
            if Path(os.readlink(link)) == self.host_dir:
                return
        elif link.exists():
            raise AsteriskRuntimeError(f"{link} exists and is not a symlink; move it away")
        tmp = state_dir / f".asterisk.{os.getpid()}.lnk"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.host_dir, target_is_directory=True)
        os.replace(tmp, link)

    def _secure_dirs(self) -> None:
        from provisioning import render

        service, asterisk = privilege.service_account(), privilege.asterisk_account()
        gid = asterisk.gid
        os.lchown(self.host_dir, service.uid, gid)
        os.chmod(self.host_dir, 0o750)
        for name in [*INSTANCE_DIRS, render.MOH_FOLDER]:
            owner = asterisk if name in ASTERISK_WRITES else service
            privilege.secure_tree(self.host_dir / name, owner, gid, dir_mode=0o2750, file_mask=0o740)
        os.chmod(self.message_dir, 0o2770)  # the call watcher deletes the messages it has filed
        for path in self.host_dir.iterdir():  # stamps such as the music's
            if path.is_file() and not path.is_symlink():
                os.lchown(path, service.uid, gid)
                os.chmod(path, path.stat().st_mode & 0o740)

    def ami_login(self, user: str):
        """An AMI user's name and secret (tawasul.ami.USERS; the secret is made on first use)."""
        from tawasul import ami

        return ami.login(self.settings, user)

    @property
    def agi_secret(self) -> str:
        """The FastAGI server's shared secret, kept in the state folder (made on first use)."""
        from tawasul.settings import agi_secret

        return agi_secret(self.settings)

    def ami_secrets(self) -> dict[str, str]:
        from tawasul import ami

        return {user: ami.secret(self.settings, user) for user in ami.USERS}

    def forbidden_module_files(self) -> list[str]:
        """The forbidden modules (tawasul.asterisk_modules) whose files this Asterisk could load."""
        from tawasul.asterisk_modules import so_names

        moddir = self.host_path(self._packaged_dirs()["moddir"])
        return [name for name in so_names() if (moddir / name).exists()]

    def refuse_forbidden_modules(self) -> None:
        """Raise when a forbidden module could be loaded: anyone with AMI's `system` class (which
        reloading needs) could load it, whatever modules.conf says."""
        present = self.forbidden_module_files()
        if present:
            moddir = self.host_path(self._packaged_dirs()["moddir"])
            raise AsteriskRuntimeError(
                f"refusing this Asterisk: it could load modules that spy on or record sessions: "
                f"{', '.join(present)} in {moddir}; delete them (or use Tawasul's own Asterisk)")

    def render(self, rows=None, ami_secrets: dict[str, str] | None = None) -> dict[str, str]:
        """Every config file for this instance (the database's devices in `rows`, a
        provisioning.rows.Rows; none if omitted), validated. Raises render.RenderError."""
        from provisioning import render
        from provisioning.rows import Rows
        from provisioning.validate import validate

        files = render.render_all(self.settings, rows or Rows(), ami_secrets or self.ami_secrets(), self.layout(),
                                  agi_secret=self.agi_secret)
        # The benchmark's gated load endpoint is admitted only with settings.load_test on.
        errors = validate(files, load_test=self.settings.load_test)
        if errors:
            raise render.RenderError(errors)
        return files

    def write_keys(self) -> list[Path]:
        """Copy the TLS certificate and key into the instance's keys folder (Asterisk, maybe
        chrooted, reads them there). Returns the changed files."""
        from provisioning import render, writer

        changed = []
        certs = Path(self.settings.state_dir) / "certs"
        if (certs / render.TLS_CERT_NAME).is_file() and (certs / render.TLS_KEY_NAME).is_file():
            for name in (render.TLS_CERT_NAME, render.TLS_KEY_NAME):
                target = self.host_dir / "keys" / name
                # 0640 in a folder of group asterisk: Asterisk, not root, reads the key
                if writer.write_atomic(target, (certs / name).read_text(), writer.FILE_MODE):
                    changed.append(target)
        return changed

    def write_config(self, files: dict[str, str]) -> list[Path]:
        """Write rendered files into the instance's etc folder, atomically. Returns changed files."""
        from provisioning import writer

        self.prepare_dirs()
        # Every file 0640 (manager.conf too): Asterisk reads them through its group; others get nothing.
        return writer.write_files(self.host_dir / "etc", files)

    def render_and_write(self, ami_secrets: dict[str, str] | None = None, rows=None) -> list[Path]:
        """Render (with the devices in `rows`, if given), validate, then write the config and the
        TLS key pair atomically. Nothing is written when rendering or validation fails, or when a
        forbidden module could be loaded (refuse_forbidden_modules)."""
        self.refuse_forbidden_modules()
        self.prepare_dirs()
        files = self.render(rows, ami_secrets)
        return self.write_keys() + self.write_config(files)

    # -- processes

    def asterisk_args(self, *extra: str) -> list[str]:
        """An `asterisk` command line for this instance, as run on the host (chroot prefix included)."""
        prefix = ["chroot", str(self.root)] if self.root else []
        return [*prefix, self.binary, "-C", str(self.config_file), *extra]

    def popen_args(self) -> list[str]:
        """Arguments to run Asterisk in the foreground as a child; the child's PID is Asterisk.

        Stop it with SIGTERM (clean shutdown). It gets SIGKILL if its parent dies first.
        Call render_and_write() before.
        """
        helper = [sys.executable, "-I", str(THIS_FILE), "exec", "--parent", str(os.getpid())]
        if self.root:
            helper += ["--root", str(self.root)]
        run_as = []
        account = privilege.asterisk_account()
        if account is not None:  # as root: Asterisk runs as its own user
            helper += ["--uid", str(account.uid), "--gid", str(account.gid)]
            run_as = ["-U", account.name, "-G", account.name]
        return [*helper, "--", self.binary, "-f", "-n", *run_as, "-C", str(self.config_file)]

    def pid(self) -> int | None:
        """PID of this instance's running Asterisk, or None."""
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if _pid_alive(pid) and str(self.config_file).encode() in cmdline:
            return pid
        return None

    def is_running(self) -> bool:
        if self.elsewhere:  # another container's process: its AMI answers or not
            try:
                with socket.create_connection((self.settings.ami_host, self.settings.ami_port), timeout=2):
                    return True
            except OSError:
                return False
        return self.pid() is not None

    def cli(self, command: str, timeout: float = 30) -> str:
        """Run one CLI command on this instance (`asterisk -rx`) and return its output."""
        if self.elsewhere:
            raise AsteriskRuntimeError("Asterisk runs in its own container (asterisk_instance): run "
                                       "`asterisk -rx` there, e.g. `podman exec <asterisk container> asterisk -C ...`")
        try:
            result = subprocess.run(
                self.asterisk_args("-rx", command), check=False, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise AsteriskRuntimeError(f"asterisk -rx {command!r} timed out after {timeout} s") from None
        if result.returncode != 0 or result.stdout.startswith("Unable to connect"):
            raise AsteriskRuntimeError(
                f"asterisk -rx {command!r} failed (exit {result.returncode}): {(result.stdout + result.stderr).strip()}"
            )
        return result.stdout

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("stdout.log", "messages"):
            path = self.log_dir / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) or "(no Asterisk log yet)"

    def wait_booted(self, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
        """Block until Asterisk is fully booted; raise with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if proc is not None and proc.poll() is not None:
                raise AsteriskRuntimeError(
                    f"Asterisk exited with code {proc.returncode} while starting\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AsteriskRuntimeError(f"Asterisk did not boot within {timeout:.0f} s\n{self.log_tail()}")
            try:
                self.cli("core waitfullybooted", timeout=max(1.0, remaining))
                return
            except AsteriskRuntimeError:
                time.sleep(0.1)

    def start(self, foreground: bool = False, timeout: float = 60, ami_secrets: dict[str, str] | None = None,
              rows=None) -> int:
        """Write the config and start Asterisk.

        Background (default): returns Asterisk's PID once it is fully booted. Asterisk lives
        until stop() or until this Python process ends. Foreground: runs until Asterisk exits
        (Ctrl-C stops it cleanly) and returns its exit code.
        """
        if self.elsewhere:
            raise AsteriskRuntimeError("Asterisk runs in its own container (asterisk_instance): start it there")
        running = self.pid()
        if running:
            raise AsteriskRuntimeError(f"Asterisk for {self.settings.state_dir} already runs (PID {running})")
        self.render_and_write(ami_secrets, rows)
        if foreground:
            proc = subprocess.Popen(self.popen_args(), stdin=subprocess.DEVNULL)
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGTERM)
                return proc.wait()
        with open(self.log_dir / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                self.popen_args(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C goes to us; we stop Asterisk cleanly
            )
        try:
            self.wait_booted(self.proc, timeout)
        except BaseException:
            self.stop(timeout=5)
            raise
        return self.proc.pid

    def stop(self, timeout: float = 20) -> None:
        """Stop gracefully (`core stop now`), then SIGTERM, then SIGKILL. No-op if not running."""
        pid = self.pid()
        if pid is None:
            self._reap()
            return
        try:
            self.cli("core stop now", timeout=min(timeout, 10))
        except AsteriskRuntimeError:
            pass
        for sig, wait in ((None, timeout), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if sig is not None:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            if self._wait_gone(pid, wait):
                break
        else:
            raise AsteriskRuntimeError(f"Asterisk PID {pid} did not stop")
        self._reap()

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.pid == pid:
                if self.proc.poll() is not None:
                    return True
            elif not _pid_alive(pid):
                return True
            time.sleep(0.05)
        return False

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None

    def destroy(self) -> None:
        """Delete this instance's folders (config, logs, astdb) and the state folder's link to them."""
        if self.is_running():
            raise AsteriskRuntimeError(f"Asterisk for {self.settings.state_dir} still runs; stop it first")
        link = Path(self.settings.state_dir).resolve() / "asterisk"
        if link.is_symlink() and Path(os.readlink(link)) == self.host_dir:
            link.unlink()
        if self.root and mounts_under(self.host_dir):
            raise AsteriskRuntimeError(f"refusing to delete {self.host_dir}: something is mounted inside")
        shutil.rmtree(self.host_dir, ignore_errors=True)

    def status(self) -> Status:
        if self.elsewhere:
            return Status(running=self.is_running())
        pid = self.pid()
        if pid is None:
            return Status(running=False)
        try:
            version = self.cli("core show version", timeout=5).strip()
            uptime = re.search(r"System uptime:\s*(\d+)", self.cli("core show uptime seconds", timeout=5))
        except AsteriskRuntimeError:
            return Status(running=True, pid=pid)
        return Status(True, pid, version, int(uptime.group(1)) if uptime else None)


# --------------------------------------------------------------------------- exec helper


def _exec_asterisk(argv: list[str]) -> None:
    """Child side of popen_args(): private mount namespace + /proc + chroot, then exec Asterisk."""
    parser = argparse.ArgumentParser(prog="runtime.py exec")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--root")
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            sys.exit(f"tawasul asterisk helper: {what}: {os.strerror(err)}")

    if args.root:
        clone_newns, ms_rec, ms_private = 0x00020000, 0x4000, 1 << 18
        ms_nosuid, ms_nodev, ms_noexec = 2, 4, 8
        check(libc.unshare(clone_newns), "unshare(CLONE_NEWNS)")
        check(libc.mount(b"none", b"/", None, ms_rec | ms_private, None), "make / private")
        proc_dir = os.path.join(args.root, "proc").encode()
        check(libc.mount(b"proc", proc_dir, b"proc", ms_nosuid | ms_nodev | ms_noexec, None), "mount /proc")
        os.chroot(args.root)
        os.chdir("/")
    if args.uid is not None:
        # Drop root here, not by Asterisk's own -U: a change of user clears the death signal, so it
        # is armed after. Asterisk then only checks that -U/-G name the user it already runs as.
        os.setgroups([])
        os.setresgid(args.gid, args.gid, args.gid)
        os.setresuid(args.uid, args.uid, args.uid)
    os.umask(0o027)  # Asterisk's files: the group (asterisk) reads, others get nothing
    pr_set_pdeathsig = 1
    check(libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != args.parent:  # the parent died before the death signal was armed
        sys.exit("tawasul asterisk helper: parent is gone")
    os.execv(command[0], command)


if __name__ == "__main__":  # `python -I runtime.py exec ...`, spawned by Runtime.popen_args()
    if sys.argv[1:2] != ["exec"]:
        sys.exit("usage: use `tawasul asterisk ...`; this file only runs as popen_args()'s helper")
    _exec_asterisk(sys.argv[2:])
