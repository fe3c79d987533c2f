"""The `tawasul` command as IT uses it: clear refusals (exit 2, one line), nothing written."""
import hashlib
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from click.testing import CliRunner

from tawasul.cli import main
from tawasul.validation import make_national_id

GOOD_ID = make_national_id("1", "55555555")


@pytest.fixture
def cli(settings):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["--state-dir", str(settings.state_dir), *args], catch_exceptions=False)

    assert run("demo", "seed").exit_code == 0
    return run


def database_fingerprint(settings) -> str:
    with closing(sqlite3.connect(settings.state_dir / "tawasul.db")) as connection:
        return hashlib.sha256("\n".join(connection.iterdump()).encode()).hexdigest()


def book(cli, *extra, national_id=GOOD_ID, at="2030-01-06T09:00", centre="BDR"):
    return cli("appointments", "book", "--centre", centre, "--national-id", national_id,
               "--name", "سعد العتيبي", "--mobile", "0551234567", "--at", at, *extra)


def test_demo_seed_prints_passwords_once_and_keeps_them_in_a_private_file(settings, cli):
    again = cli("demo", "seed")
    assert "already present" in again.output
    credentials = settings.state_dir / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o077 == 0
    assert {line.split(":")[0] for line in credentials.read_text().splitlines()[1:]} == {
        "staff", "governor_office", "it_admin"}


def test_book_and_list(cli, settings):
    booked = book(cli, "--subject", "طلب متابعة")
    assert booked.exit_code == 0, booked.output
    assert booked.output.startswith("booked A-") and "2030-01-06 09:00" in booked.output
    reference = booked.output.split()[1]
    with closing(sqlite3.connect(settings.state_dir / "tawasul.db")) as connection:
        texts = [body for (body,) in connection.execute("SELECT body FROM outbox_message")]
    assert any(reference in body and "تم حجز موعدك" in body for body in texts)  # its SMS, as from the web
    listing = cli("appointments", "list", "--date", "2030-01-06")
    assert "BDR" in listing.output and "سعد العتيبي" in listing.output and "booked" in listing.output
    assert GOOD_ID not in listing.output


@pytest.mark.parametrize("args, expected", [
    ({"national_id": "1234567890"}, "national_id: check digit"),
    ({"centre": "NOPE"}, "centre: no active centre with code 'NOPE'"),
    ({"at": "2020-01-05T09:00"}, "at: is in the past"),
    ({"at": "2030-01-06T09:07"}, "at: is not one of the governor's session slots"),
    ({"at": "next tuesday"}, "at: 'next tuesday' is not an ISO date"),
])
def test_bad_input_is_refused_with_one_line_and_changes_nothing(settings, cli, args, expected):
    before = database_fingerprint(settings)
    result = book(cli, **args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tawasul: {expected}")
    assert database_fingerprint(settings) == before


def test_a_slot_already_taken_is_refused(settings, cli):
    assert book(cli).exit_code == 0
    before = database_fingerprint(settings)
    second = book(cli, national_id=make_national_id("1", "66666666"))
    assert second.exit_code == 2 and second.output.strip() == "tawasul: slot: this slot is already booked"
    assert database_fingerprint(settings) == before


def test_an_unreachable_database_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--database-url",
                                       "postgresql+psycopg://nobody@127.0.0.1:1/none",
                                       "appointments", "list"])
    assert result.exit_code == 1 and "database unavailable" in result.output


def test_the_console_script_is_installed_and_answers():
    result = subprocess.run([sys.executable, "-m", "tawasul", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "appointments" in result.stdout
    assert result.stderr == ""  # every room's commands loaded
    for room in ("agi", "web", "asterisk", "up"):
        assert f"\n  {room} " in result.stdout


def test_phones_token_roll_gives_a_new_token(cli):
    first = cli("--demo", "phones", "token", "centre-bdr-1")
    rolled = cli("--demo", "phones", "token", "centre-bdr-1", "--roll")
    again = cli("--demo", "phones", "token", "centre-bdr-1")
    token = lambda result: result.output.split("token: ")[1].split()[0]  # noqa: E731
    assert rolled.exit_code == 0 and token(rolled) != token(first) and token(again) == token(rolled)


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"tawasul, version {version('tawasul')}\n"
