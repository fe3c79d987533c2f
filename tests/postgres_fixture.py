"""A throwaway PostgreSQL server for the tests: its own cluster in a temporary folder, on a unix
socket and a loopback port that do not clash with anything else. Needs the postgresql package."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.live import free_port


def _bindir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL is not installed: run provisioning/install-system.sh")


def _as_owner(args: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *args] if owner else args


class PostgresServer:
    def __init__(self):
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="tawasul-pg-"))
        # PostgreSQL refuses to run as root; run it as the postgres account then.
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner:
            account = pwd.getpwnam(self.owner)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.data = self.folder / "data"
        self.bindir = _bindir()

    def start(self) -> None:
        run = lambda *a: subprocess.run(_as_owner([*a], self.owner), check=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8")
        run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.folder / "log"),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                  f"-c max_connections=200", "start")

    def restart(self) -> None:
        """A fast restart, as an upgrade or a failover would: every client connection is cut."""
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                                  "-l", str(self.folder / "log"), "restart"], self.owner),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                  "stop"], self.owner), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self) -> str:
        name = "t" + uuid.uuid4().hex[:12]
        subprocess.run(_as_owner([str(self.bindir / "createdb"), "-h", str(self.folder), "-p", str(self.port),
                                  "-U", "postgres", name], self.owner), check=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    server.start()
    yield server
    server.stop()
