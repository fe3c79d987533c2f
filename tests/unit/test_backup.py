"""`tawasul backup` and `tawasul restore` for real: a writer process keeps booking while the backup is
taken; every booking committed before the backup started is found in the restored system, on SQLite
and on a real PostgreSQL. Wrong passphrases and occupied targets write nothing."""
from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from provisioning import certs
from tawasul import ami, demo, sealed
from tawasul.cli import main
from tawasul.db import Database, upgrade
from tawasul.models import Appointment
from tawasul.vault import Vault

pytestmark = pytest.mark.timeout(180)

PASSPHRASE = "مفتاح النسخ الاحتياطي 2026"

# Books video sessions one after another, from tomorrow on, and prints each reference once committed.
WRITER = r"""
import datetime as dt, sys
from tawasul import booking, settings as s
from tawasul.db import Database
from tawasul.models import AppointmentKind
from tawasul.validation import make_national_id
settings = s.load()
db = Database(settings.db_url)
n = 0
with db.read() as session:
    days = booking.session_days(session, dt.date.today() + dt.timedelta(days=1), 200)
for day in days:
    with db.read() as session:
        slots = booking.free_video_slots(session, day)
    for slot in slots:
        n += 1
        with db.write() as session:
            citizen = booking.find_or_register_citizen(session, make_national_id("1", f"{n:08d}"), f"Citizen {n}", "0551234567")
            appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=slot,
                                       centre=booking.centre_by_code(session, "BDR"), actor="test")
            reference = appointment.reference
        print(reference, flush=True)
"""


def tawasul(*args, env: dict, input_text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tawasul", *args], env={**os.environ, **env}, input=input_text,
                          capture_output=True, text=True, timeout=120)


def environ(settings, url: str) -> dict:
    return {"TAWASUL_STATE_DIR": str(settings.state_dir), "TAWASUL_DATABASE_URL": url, "TAWASUL_DEMO": "1"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def running_system(settings, db_url):
    """A seeded state folder with secrets, certificates, an attachment and a settings file."""
    upgrade(db_url)
    database = Database(db_url)
    with database.write() as session:
        demo.seed(session, dataclasses.replace(settings, database_url=db_url))
    database.dispose()
    Vault.for_settings(settings)
    ami.secret(settings, "web")
    certs.ensure_certificates(settings)
    (settings.state_dir / "attachments").mkdir(mode=0o700)
    (settings.state_dir / "attachments" / "a1b2.pdf").write_bytes(b"%PDF-1.4 a citizen's letter")
    (settings.state_dir / "tawasul.toml").write_text('timezone = "Asia/Riyadh"\n')
    return settings


class Writer:
    """The writer process, its committed references read as they come."""

    def __init__(self, env: dict):
        self.process = subprocess.Popen([sys.executable, "-c", WRITER], env={**os.environ, **env},
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.committed: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.committed.append(line.strip())

    def wait_for(self, count: int, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while len(self.committed) < count:
            assert self.process.poll() is None, self.process.stderr.read()
            assert time.monotonic() < deadline, f"only {len(self.committed)} bookings in {timeout} s"
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.reader.join(5)


def references(url: str) -> set[str]:
    database = Database(url)
    try:
        with database.read() as session:
            return set(session.scalars(sa.select(Appointment.reference)))
    finally:
        database.dispose()


def test_a_backup_taken_under_write_traffic_restores_every_earlier_booking(running_system, db_url, tmp_path,
                                                                          request):
    settings = running_system
    env = environ(settings, db_url)
    writer = Writer(env)
    try:
        writer.wait_for(20)
        # In this process (no interpreter to start): the last bookings before it are still in SQLite's
        # write-ahead log, not yet in the database file, and must be in the backup all the same.
        before = list(writer.committed)  # committed before the backup starts
        backup = CliRunner(env={**env, "TAWASUL_BACKUP_PASSPHRASE": PASSPHRASE}).invoke(
            main, ["backup", "--out", str(tmp_path / "tawasul.backup")])
        during = len(writer.committed)
        writer.wait_for(during + 5)  # still writing after the backup: the backup held no lock
    finally:
        writer.stop()
    assert backup.exit_code == 0, backup.output
    assert len(before) < during, "no booking was committed while the backup ran"
    archive = tmp_path / "tawasul.backup"
    assert mode(archive) == 0o600
    assert b"device.key" not in archive.read_bytes() and b"BEGIN" not in archive.read_bytes()  # sealed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert not list(settings.state_dir.glob(".backup-*"))

    restored = dataclasses.replace(settings, state_dir=tmp_path / "restored")
    target_url = (restored.db_url if db_url.startswith("sqlite")
                  else request.getfixturevalue("postgres_server").new_database())
    restored_env = environ(restored, target_url)

    # A wrong passphrase: exit 2, one line, nothing written (no folder, nothing in the database).
    (tmp_path / "wrong").write_text("not the right passphrase\n")
    wrong = tawasul("restore", str(archive), "--passphrase-file", str(tmp_path / "wrong"), env=restored_env)
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
        "tawasul: backup: wrong passphrase, or the backup was changed"]
    assert not restored.state_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tawasul")]
    if not db_url.startswith("sqlite"):
        assert not sa.inspect(sa.create_engine(target_url)).get_table_names()

    # Into a database that holds data (here the backed-up one): refused, and no state folder is made.
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    occupied = tawasul("restore", str(archive), "--passphrase-file", str(tmp_path / "pass"),
                       env={**restored_env, "TAWASUL_DATABASE_URL": db_url})
    assert occupied.returncode == 2 and "give --force to replace it" in occupied.stderr, occupied.stderr
    assert not restored.state_dir.exists()

    done = tawasul("restore", str(archive), "--passphrase-file", str(tmp_path / "pass"), env=restored_env)
    assert done.returncode == 0, done.stderr
    found = references(target_url)
    assert set(before) <= found, f"missing after restore: {set(before) - found}"
    assert found <= set(writer.committed)

    # The restored system works: the command line reads its bookings.
    listing = tawasul("appointments", "list", "--date", _day_of(target_url, before[0]), env=restored_env)
    assert listing.returncode == 0 and before[0] in listing.stdout, listing.stderr

    # Secrets, certificates, attachments and the settings file, with private modes.
    for name in ("secrets/device.key", "secrets/ami-web", "certs/ca.key", "certs/ca.crt", "certs/asterisk.key",
                 "attachments/a1b2.pdf", "tawasul.toml"):
        assert (restored.state_dir / name).read_bytes() == (settings.state_dir / name).read_bytes(), name
    assert mode(restored.state_dir / "secrets") == 0o700 and mode(restored.state_dir / "secrets" / "ami-web") == 0o600
    assert mode(restored.state_dir / "certs" / "ca.key") == 0o600
    assert mode(restored.state_dir / "attachments" / "a1b2.pdf") == 0o600
    assert Vault.for_settings(restored).decrypt(Vault.for_settings(settings).encrypt("x")) == "x"

    # Into a folder that holds a system: refused without --force, replaced with it.
    again = tawasul("restore", str(archive), "--passphrase-file", str(tmp_path / "pass"), env=restored_env)
    assert again.returncode == 2 and "not empty" in again.stderr
    forced = tawasul("restore", str(archive), "--passphrase-file", str(tmp_path / "pass"), "--force",
                     env=restored_env)
    assert forced.returncode == 0, forced.stderr
    assert references(target_url) == found


def _day_of(url: str, reference: str) -> str:
    from tawasul import booking, scheduling

    database = Database(url)
    try:
        with database.read() as session:
            appointment = booking.by_reference(session, reference)
            return scheduling.local_day(booking.schedule(session), appointment.slot_start).isoformat()
    finally:
        database.dispose()


def test_backup_refuses_without_a_passphrase_and_a_short_one(running_system, db_url, tmp_path):
    env = {**environ(running_system, db_url), "TAWASUL_BACKUP_PASSPHRASE": ""}
    missing = tawasul("backup", "--out", str(tmp_path / "b"), env=env)
    assert missing.returncode == 2 and "passphrase" in missing.stderr
    short = tawasul("backup", "--out", str(tmp_path / "b"), env={**env, "TAWASUL_BACKUP_PASSPHRASE": "short"})
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    assert not (tmp_path / "b").exists()


def test_a_changed_archive_is_refused_and_nothing_is_written(running_system, db_url, tmp_path):
    env = {**environ(running_system, db_url), "TAWASUL_BACKUP_PASSPHRASE": PASSPHRASE}
    assert tawasul("backup", "--out", str(tmp_path / "b"), env=env).returncode == 0
    data = bytearray((tmp_path / "b").read_bytes())
    data[-20] ^= 1
    (tmp_path / "b").write_bytes(bytes(data))
    target = tmp_path / "restored"
    changed = tawasul("restore", str(tmp_path / "b"), env={**env, "TAWASUL_STATE_DIR": str(target)})
    assert changed.returncode == 2 and "changed" in changed.stderr
    assert not target.exists()


def test_the_sealed_format_round_trips_and_refuses_cuts(tmp_path):
    import io

    data = os.urandom(sealed.CHUNK * 2 + 7)
    out = io.BytesIO()
    writer = sealed.SealingWriter(out, PASSPHRASE)
    writer.write(data)
    writer.close()
    reader = sealed.OpeningReader(io.BytesIO(out.getvalue()), PASSPHRASE)
    assert b"".join(iter(lambda: reader.read(10240), b"")) == data
    cut = out.getvalue()[: len(out.getvalue()) - sealed.CHUNK - 30]  # the last chunk gone, whole chunks left
    with pytest.raises(sealed.WrongPassphrase):
        sealed.OpeningReader(io.BytesIO(cut), PASSPHRASE).read()
