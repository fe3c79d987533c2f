"""`tawasul backup` and `tawasul restore`: the database, secrets, certificates, attachments and settings
file of a state folder, in one archive sealed with a passphrase (tawasul.sealed).

The archive is a tar stream inside the sealed file: `database/` (an SQLite copy made with SQLite's
online backup API, or a `pg_dump -Fc` file: both consistent while the system keeps writing),
`secrets/`, `certs/`, `attachments/`, the state folder's `tawasul.toml` and `demo-credentials.txt`,
and last `manifest.json` (format, version, time, database kind and schema revision, a SHA-256 of
every file). There is no unsealed variant: the secrets (AMI password, the key of the devices' SIP
passwords, the CA key) never leave the machine in the clear.

A restore opens and checks everything (passphrase, checksums, schema revision) in a staging folder
beside the state folder before it writes anything in place.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path, PurePosixPath

import click
import sqlalchemy as sa

from tawasul import sealed
from tawasul.clitools import fail, guarded
from tawasul.db import MIGRATIONS, sqlite_file
from tawasul.settings import Settings
from tawasul.validation import InvalidInput

FORMAT = 1
FOLDERS = ("secrets", "certs", "attachments")
FILES = ("tawasul.toml", "demo-credentials.txt")
MANIFEST = "manifest.json"
PASSPHRASE_ENV = "TAWASUL_BACKUP_PASSPHRASE"


class BackupFailed(Exception):
    """A tool or the database failed (exit code 1, not a refusal)."""


# --- the database -----------------------------------------------------------------------------------

def database_kind(url: str) -> str:
    backend = sa.engine.make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput("database_url", f"backups support SQLite and PostgreSQL, not {backend}")
    return backend


def pg_environ(url: str) -> dict[str, str]:
    """libpq's variables for a SQLAlchemy URL: the password travels in the environment, never in argv."""
    parts = sa.engine.make_url(url)
    env = {"PGHOST": parts.host or parts.query.get("host", ""), "PGPORT": str(parts.port or ""),
           "PGUSER": parts.username or "", "PGPASSWORD": parts.password or "",
           "PGDATABASE": parts.database or "", "PGSSLMODE": parts.query.get("sslmode", "")}
    return {**os.environ, **{name: value for name, value in env.items() if value}}


def _run(args: list[str], url: str) -> None:
    try:
        done = subprocess.run(args, env=pg_environ(url), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise BackupFailed(f"{args[0]} is not installed (Debian: postgresql-client)") from None
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupFailed(f"{args[0]} failed: {lines[0] if lines else f'exit code {done.returncode}'}")


def schema_revision(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() or ""
    except sa.exc.OperationalError as exc:
        raise BackupFailed(f"database unavailable: {exc.orig}") from None
    except sa.exc.ProgrammingError:
        return ""
    finally:
        engine.dispose()


def dump_database(url: str, folder: Path) -> tuple[str, Path, str]:
    """(kind, file, schema revision): a consistent copy of the database taken while it is in use."""
    kind = database_kind(url)
    if kind == "sqlite":
        source_path = sqlite_file(url)
        if not source_path or not Path(source_path).is_file():
            raise InvalidInput("database", f"no database at {source_path or url}: nothing to back up")
        target = folder / "tawasul.db"
        source, copy = sqlite3.connect(source_path, timeout=30), sqlite3.connect(target)
        try:
            source.backup(copy)  # all pages in one step: one read transaction, a snapshot, writers go on
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupFailed("the copy of the database failed SQLite's check")
        finally:
            copy.close()
            source.close()
        return kind, target, schema_revision(f"sqlite:///{target}")
    revision = schema_revision(url)
    target = folder / "tawasul.pgdump"
    _run(["pg_dump", "--format=custom", "--file", str(target)], url)  # one snapshot (repeatable read)
    return kind, target, revision


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def _has_tables(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        return bool(sa.inspect(engine).get_table_names())
    except sa.exc.OperationalError as exc:
        raise BackupFailed(f"database unavailable: {exc.orig}") from None
    finally:
        engine.dispose()


def check_database_target(url: str, kind: str, force: bool) -> None:
    """Refuse a target of another kind, or one that holds data, unless forced (before anything is written)."""
    if database_kind(url) != kind:
        raise InvalidInput("database_url", f"the backup holds a {kind} database and the configured one is "
                                           f"{database_kind(url)}: set database_url to a {kind} database")
    if kind == "postgresql":
        if _has_tables(url) and not force:
            raise InvalidInput("database", "the configured database is not empty (give --force to replace it)")
        return
    target = sqlite_file(url)
    if not target:
        raise InvalidInput("database_url", "an in-memory database cannot be restored into")
    if Path(target).exists() and not force:
        raise InvalidInput("database", f"{target} exists (give --force to replace it)")


def restore_database(url: str, kind: str, dump: Path) -> None:
    if kind == "postgresql":  # one transaction: on any error the database is left as it was
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
              "--exit-on-error", "--dbname", pg_environ(url)["PGDATABASE"], str(dump)], url)
        return
    target = Path(sqlite_file(url))
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(dump, incoming)
    os.chmod(incoming, 0o600)
    for stale in (Path(f"{target}-wal"), Path(f"{target}-shm")):  # an old log must never meet the new file
        stale.unlink(missing_ok=True)
    os.replace(incoming, target)


# --- the archive ------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _state_files(state_dir: Path):
    """(name in the archive, path) of what the state folder keeps besides the database."""
    for name in FOLDERS:
        folder = state_dir / name
        if folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                yield path.relative_to(state_dir).as_posix(), path
    for name in FILES:
        if (state_dir / name).is_file():
            yield name, state_dir / name


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(dt.datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


def create(settings: Settings, out: Path, passphrase: str) -> dict:
    """Write the sealed backup to `out` (atomically, mode 0600); returns its manifest."""
    out = Path(out)
    if not out.parent.is_dir():
        raise InvalidInput("out", f"{out.parent} is not a folder")
    if out.is_dir():
        raise InvalidInput("out", f"{out} is a folder; give a file name")
    if len(passphrase) < sealed.MIN_PASSPHRASE:
        raise InvalidInput("passphrase", f"at least {sealed.MIN_PASSPHRASE} characters, please")
    state_dir = Path(settings.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    # The database's plain copy waits in the state folder, beside the database itself, never beside the
    # backups (which may be a share that is copied elsewhere).
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=state_dir))  # mode 0700
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        kind, dump, revision = dump_database(settings.db_url, work)
        checksums: dict[str, str] = {}
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            writer = sealed.SealingWriter(raw, passphrase)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                name = f"database/{dump.name}"
                checksums[name] = _sha256(dump)
                tar.add(dump, name)
                for name, path in _state_files(state_dir):
                    data = path.read_bytes()  # once: the checksum is of exactly what is archived
                    checksums[name] = hashlib.sha256(data).hexdigest()
                    _add_bytes(tar, name, data, path.stat().st_mode & 0o777)
                manifest = {"format": FORMAT, "tawasul_version": version("tawasul"),
                            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                            "database": {"kind": kind, "file": f"database/{dump.name}",
                                         "schema_revision": revision},
                            "files": checksums}
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
            writer.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
        return manifest
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _member_path(member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    top = path.parts[0] if path.parts else ""
    if (path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir())
            or top not in {MANIFEST, "database", *FOLDERS, *FILES}):
        raise InvalidInput("backup", f"unexpected entry {member.name!r} in the archive")
    return path


def _mode(path: PurePosixPath, recorded: int) -> int:
    """Secrets and attachments: owner only. Certificates keep 0644 (a .crt) or 0600 (a key)."""
    return (recorded & 0o644) if path.parts[0] == "certs" else 0o600


def unpack(archive: Path, passphrase: str, staging: Path) -> dict:
    """Open the archive into `staging` and check it; returns the manifest. Raises InvalidInput."""
    try:
        with open(archive, "rb") as source:
            reader = sealed.OpeningReader(source, passphrase)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    path = _member_path(member)
                    target = staging.joinpath(*path.parts)
                    if member.isdir():
                        target.mkdir(mode=0o700, parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _mode(path, member.mode))
                    with os.fdopen(fd, "wb") as handle:
                        shutil.copyfileobj(tar.extractfile(member), handle, 1024 * 1024)
            reader.read()
    except (sealed.WrongPassphrase, sealed.NotSealed) as exc:
        raise InvalidInput("backup", str(exc)) from None
    except (tarfile.TarError, FileExistsError) as exc:
        raise InvalidInput("backup", f"damaged archive: {exc}") from None
    try:
        manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
        files, database = manifest["files"], manifest["database"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidInput("backup", "the archive has no readable manifest") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput("backup", f"backup format {manifest.get('format')!r} is not one this version reads")
    present = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()} - {MANIFEST}
    if present != set(files) or database.get("file") not in files:
        raise InvalidInput("backup", "the archive's files do not match its manifest")
    for name, checksum in files.items():
        if _sha256(staging / name) != checksum:
            raise InvalidInput("backup", f"{name} does not match its checksum")
    revision = database.get("schema_revision", "")
    if revision and revision not in known_revisions():
        raise InvalidInput("backup", f"the backup's schema revision {revision} is newer than this version of "
                                     "Tawasul knows: install the version that made it")
    return manifest


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def restore(settings: Settings, archive: Path, passphrase: str, force: bool = False) -> dict:
    """Restore a backup into the settings' state folder and database; returns its manifest."""
    archive = Path(archive)
    if not archive.is_file():
        raise InvalidInput("backup", f"no such file: {archive}")
    state_dir = Path(settings.state_dir).resolve()
    if not force and not _is_empty(state_dir):
        raise InvalidInput("state folder", f"{state_dir} is not empty: restore into a new folder "
                                           "(--state-dir), or give --force to replace what it holds")
    with open(archive, "rb") as source:  # a wrong passphrase stops here, before anything is written
        try:
            sealed.OpeningReader(source, passphrase)
        except (sealed.WrongPassphrase, sealed.NotSealed) as exc:
            raise InvalidInput("backup", str(exc)) from None
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tawasul-restore-", dir=state_dir.parent))
    try:
        manifest = unpack(archive, passphrase, staging)
        database = manifest["database"]
        check_database_target(settings.db_url, database["kind"], force)
        created = not state_dir.exists()
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            restore_database(settings.db_url, database["kind"], staging / database["file"])
        except BaseException:
            if created:
                shutil.rmtree(state_dir, ignore_errors=True)
            raise
        for name in FOLDERS:
            _put_folder(staging / name, state_dir / name)
        for name in FILES:
            if (staging / name).is_file():
                os.replace(staging / name, state_dir / name)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _put_folder(incoming: Path, target: Path) -> None:
    """Replace `target` by `incoming` (renames on one file system; the old one goes only once the new is in)."""
    if not incoming.is_dir():
        return
    incoming.chmod(0o700)
    for folder in incoming.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o700)
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    shutil.move(str(incoming), str(target))
    shutil.rmtree(old, ignore_errors=True)


# --- the commands -----------------------------------------------------------------------------------

def read_passphrase(passphrase_file: str | None, confirm: bool) -> str:
    """From --passphrase-file (its first line), else $TAWASUL_BACKUP_PASSPHRASE, else typed at a prompt."""
    if passphrase_file:
        try:
            lines = Path(passphrase_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInput("passphrase-file", f"{passphrase_file}: {exc.strerror}") from None
        passphrase = lines[0] if lines else ""
    elif os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        passphrase = click.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)
    else:
        raise InvalidInput("passphrase", f"give --passphrase-file or set {PASSPHRASE_ENV} "
                                         "(or run the command in a terminal to type it)")
    if len(passphrase) < sealed.MIN_PASSPHRASE:
        raise InvalidInput("passphrase", f"at least {sealed.MIN_PASSPHRASE} characters, please")
    return passphrase


_PASSPHRASE_FILE = click.option("--passphrase-file", type=click.Path(dir_okay=False),
                                help=f"A file whose first line is the passphrase (else ${PASSPHRASE_ENV}, "
                                     "else a prompt).")


@click.command("backup")
@click.option("--out", required=True, type=click.Path(dir_okay=True), help="The archive to write.")
@_PASSPHRASE_FILE
@click.pass_obj
@guarded
def backup_command(settings: Settings, out: str, passphrase_file: str | None):
    """Back up the database, secrets, certificates, attachments and settings file, sealed with a
    passphrase. Safe while the system runs."""
    passphrase = read_passphrase(passphrase_file, confirm=True)
    try:
        manifest = create(settings, Path(out), passphrase)
    except BackupFailed as exc:
        fail(str(exc), code=1)
    config = os.environ.get("TAWASUL_CONFIG")
    click.echo(f"backup written to {out}: {manifest['database']['kind']} database at schema revision "
               f"{manifest['database']['schema_revision'] or '?'}, {len(manifest['files'])} files")
    if config and Path(config).resolve().parent != Path(settings.state_dir).resolve():
        click.echo(f"note: the settings file {config} is outside the state folder and not in the backup")


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False))
@_PASSPHRASE_FILE
@click.option("--force", is_flag=True, help="Replace the database, secrets and certificates already there.")
@click.pass_obj
@guarded
def restore_command(settings: Settings, archive: str, passphrase_file: str | None, force: bool):
    """Restore a backup into the state folder (a new one, or an existing one with --force) and the
    configured database. Stop the services first."""
    passphrase = read_passphrase(passphrase_file, confirm=False)
    try:
        manifest = restore(settings, Path(archive), passphrase, force)
    except BackupFailed as exc:
        fail(str(exc), code=1)
    click.echo(f"restored the backup of {manifest['created_at']} (Tawasul {manifest['tawasul_version']}) "
               f"into {Path(settings.state_dir).resolve()}; next: `tawasul db upgrade`, then "
               "`tawasul provision apply` (or `tawasul up`)")
