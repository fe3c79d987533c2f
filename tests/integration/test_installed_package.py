"""`pip install .` for real: the wheel, built from a copy of the source, installed into a new
virtual environment of Debian's Python, run by an unprivileged user from a folder of its own.

The database, Asterisk's configuration, a phone's profile, the web in Arabic (the translations
compiled into the wheel) and the FastAGI server all work from the installed package alone, and
nothing is written where it is installed (the user could not).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.live import free_port, stop, wait_for, wait_http
from tests.unit.test_agi_server import agi_call

REPO = Path(__file__).resolve().parents[2]
USER = "tawasul-pkgtest"
SYSTEM_PYTHON = "/usr/bin/python3"  # a service user cannot run the developer's own Python
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info", "__pycache__", "*.mo",
                                    ".pytest_cache", "bench-results")

pytestmark = pytest.mark.timeout(300)


def run(args: list, **kwargs) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        done = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                               "--shell", "/usr/sbin/nologin", USER], capture_output=True, text=True)
        assert done.returncode in (0, 9), done.stderr  # 9: made meanwhile by another run
        return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def folder():
    path = Path(tempfile.mkdtemp(prefix="tawasul-pkgtest-", dir="/tmp"))
    path.chmod(0o755)  # the service user reaches the virtual environment inside
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel(folder) -> Path:
    source = folder / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)  # no stale build/ or .mo of the checkout's
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", folder / "dist", source])
    [built] = (folder / "dist").glob("tawasul-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(folder, wheel) -> Path:
    venv = folder / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv])  # this pip installs into it: quicker
    run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", wheel])
    return venv


@pytest.fixture(scope="module")
def installed(folder, venv):
    """Runs `tawasul ...` (or any program of the venv) as the service user, in its state folder."""
    user = service_user()
    state = folder / "state"
    state.mkdir(mode=0o700)
    os.chown(state, user.pw_uid, user.pw_gid)
    ports = {"web": free_port(), "agi": free_port()}
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(state), "LANG": "C.UTF-8",
           "TAWASUL_STATE_DIR": str(state), "TAWASUL_DEMO": "1",
           "TAWASUL_WEB_PORT": str(ports["web"]), "TAWASUL_AGI_PORT": str(ports["agi"])}

    def command(*args) -> list[str]:
        return ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *map(str, args)]

    def tawasul(*args) -> str:
        return run(command("tawasul", *args), cwd=state)

    def start(*args) -> subprocess.Popen:
        return subprocess.Popen(command("tawasul", *args), cwd=state, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    tawasul.command, tawasul.start, tawasul.state, tawasul.ports = command, start, state, ports
    return tawasul


def test_the_wheel_holds_every_data_file_and_the_compiled_translations_not_their_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = run(["git", "ls-files", "tawasul", "web", "provisioning", "agi", "asterisk_conf"], cwd=REPO).split()
    data = {name for name in tracked if not name.endswith(".py") and name != "provisioning/install-system.sh"}
    expected = {name[:-3] + ".mo" if name.endswith(".po") else name for name in data}
    assert expected - names == set()
    assert [name for name in names if name.endswith(".po")] == []
    for example in ("asterisk_conf/pjsip.conf.j2", "web/translations/core/ar/LC_MESSAGES/messages.mo",
                    "tawasul/migrations/versions/0001_initial_schema.py", "provisioning/prompts/ar.toml",
                    "provisioning/phones/templates/yealink/T58W.cfg.j2", "web/static/vendor/jssip/jssip.min.js"):
        assert example in names


def test_the_installed_package_runs_as_an_unprivileged_user(installed, venv):
    state, ports = installed.state, installed.ports
    where = run(installed.command("python", "-c", "import asterisk_conf, web; print(asterisk_conf.__file__, web.__file__)"),
                cwd=state).split()
    assert all(path.startswith(f"{venv}/lib/") for path in where), where  # the wheel, not the checkout

    assert installed("--version").startswith("tawasul, version ")
    assert "database is up to date" in installed("db", "upgrade")
    assert "demo region seeded" in installed("demo", "seed")

    out = state / "asterisk"
    assert "wrote 20 changed of 20 files" in installed("provision", "render", "--out", out)
    pjsip, extensions = (out / "pjsip.conf").read_text(), (out / "extensions.conf").read_text()
    assert "[transport-tls]" in pjsip and "[centre-bdr-1](endpoint-centre,acl-centre-bdr)" in pjsip
    assert "[from-centre]" in extensions
    assert f"AGI(agi://127.0.0.1:{ports['agi']}/route_call," in extensions

    installed("phones", "export", "centre-bdr-1", "--out", state / "phone")
    assert "sip:centre-bdr-1@" in (state / "phone" / "accounts").read_text()

    arabic = {m.id: m.string for m in read_po((REPO / "web/translations/core/ar/LC_MESSAGES/messages.po").open("rb"))}
    web = installed.start("web", "serve", "--workers", "1", "--threads", "4")
    agi = installed.start("agi", "serve", "--host", "127.0.0.1")
    try:
        base = f"http://127.0.0.1:{ports['web']}/"
        wait_http(base, web, timeout=60)
        with urllib.request.urlopen(base + "?lang=ar", timeout=10) as answer:
            assert answer.status == 200
            page = answer.read().decode()
        assert arabic["Tawasul service"] in page and 'dir="rtl"' in page
        with urllib.request.urlopen(base + "?lang=en", timeout=10) as answer:
            assert "Tawasul service" in answer.read().decode()

        wait_for(lambda: agi.poll() is not None or _accepts(ports["agi"]), 30, "agi serve listens")
        assert agi.poll() is None, agi.stdout.read()
        secret = (state / "secrets" / "agi").read_text().strip()  # what Asterisk's dialplan holds
        call = agi_call(ports["agi"], "centre-bdr-1", secret=secret)  # no booking now: a decision, a no
        assert call.decision == "deny" and call.reason, call
    finally:
        for process in (web, agi):
            stop(process)
    assert web.returncode is not None and agi.returncode is not None


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        time.sleep(0.1)
        return False
