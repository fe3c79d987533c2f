"""Files sent with a ticket: PDF, JPEG or PNG only (checked by their first bytes, not only their
name), a few at most, each small; kept under `<state_dir>/attachments/` with random names."""
from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import Attachment, Ticket, TicketEvent, utcnow
from tawasul.validation import InvalidInput

MAX_BYTES = 2 * 1024 * 1024
MAX_FILES = 3
FIELD = "attachments"

# content type -> (magic bytes at the start, accepted name endings)
TYPES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "application/pdf": (b"%PDF-", (".pdf",)),
    "image/jpeg": (b"\xff\xd8\xff", (".jpg", ".jpeg")),
    "image/png": (b"\x89PNG\r\n\x1a\n", (".png",)),
}


@dataclass(frozen=True)
class Upload:
    """A checked file, ready to store."""

    name: str
    content_type: str
    data: bytes


def folder_of(state_dir: Path) -> Path:
    return Path(state_dir) / "attachments"


def clean_name(filename: str) -> str:
    """The file's own name, without any folder, control characters or excess length."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot else name[:200]
    return name or "attachment"


def check(filename: str, data: bytes) -> Upload:
    name = clean_name(filename)
    ending = os.path.splitext(name.lower())[1]
    kind = next((ct for ct, (_magic, endings) in TYPES.items() if ending in endings), None)
    if kind is None:
        raise InvalidInput(FIELD, "only PDF, JPEG or PNG files are accepted")
    if not data:
        raise InvalidInput(FIELD, "the file is empty")
    if len(data) > MAX_BYTES:
        raise InvalidInput(FIELD, "each file must be 2 MB at most")
    if not data.startswith(TYPES[kind][0]):
        raise InvalidInput(FIELD, "the file's content is not the PDF, JPEG or PNG its name says")
    return Upload(name, kind, data)


# A citizen's recorded message (the refusal's offer, filed by the call watcher): WAV, internal path only.
# The public and staff forms never accept audio (TYPES above); 120 s of 8 kHz 16-bit is under 2 MB.
RECORDING_TYPE = "audio/wav"
RECORDING_MAX_BYTES = 4 * 1024 * 1024


def recording(filename: str, data: bytes) -> Upload:
    """A WAV file Asterisk recorded (RIFF....WAVE), for `save`; never reached from a web form."""
    name = clean_name(filename)
    if not name.lower().endswith(".wav"):
        raise InvalidInput(FIELD, "a recording is a .wav file")
    if len(data) <= 44 or not (data.startswith(b"RIFF") and data[8:12] == b"WAVE"):
        raise InvalidInput(FIELD, "the recording is empty or not a WAV file")
    if len(data) > RECORDING_MAX_BYTES:
        raise InvalidInput(FIELD, "the recording is too long")
    return Upload(name, RECORDING_TYPE, data)


def check_all(files: list[tuple[str, bytes]]) -> list[Upload]:
    files = [(name, data) for name, data in files if name or data]  # an empty file input sends nothing
    if len(files) > MAX_FILES:
        raise InvalidInput(FIELD, "3 files at most")
    return [check(name, data) for name, data in files]


PUBLIC = "public"  # the actor of filings from the public form and API
MB = 1024 * 1024

# Bytes of files sent with public filings since a moment (a ticket's first event names who filed it).
_PUBLIC_BYTES_SINCE = (
    sa.select(sa.func.coalesce(sa.func.sum(Attachment.size), 0))
    .join(TicketEvent, sa.and_(TicketEvent.ticket_id == Attachment.ticket_id, TicketEvent.from_status == ""))
    .where(TicketEvent.actor == PUBLIC, Attachment.created_at >= sa.bindparam("since")))


def check_room(session: Session, state_dir: Path, uploads: list[Upload], actor: str, *,
               public_mb_a_day: int, free_space_floor_mb: int, now: dt.datetime | None = None) -> None:
    """Refuse files that would leave the disk under its floor, or take public filings past their
    quota for the last 24 hours: repeated anonymous filings must not fill the disk."""
    size = sum(len(u.data) for u in uploads)
    if not size:
        return
    free = shutil.disk_usage(state_dir if Path(state_dir).exists() else Path(state_dir).parent).free
    if free - size < free_space_floor_mb * MB:
        raise InvalidInput(FIELD, "files cannot be received at the moment: send your request without them")
    if actor == PUBLIC:
        since = (now or utcnow()) - dt.timedelta(days=1)
        if session.scalar(_PUBLIC_BYTES_SINCE, {"since": since}) + size > public_mb_a_day * MB:
            raise InvalidInput(FIELD, "files cannot be received at the moment: send your request without them")


def save(session: Session, ticket: Ticket, state_dir: Path, uploads: list[Upload], actor: str,
         written: list[Path]) -> list[Attachment]:
    """Write the files and their rows. Every path written is appended to `written`, so the caller
    can remove them if the transaction fails (see `discard`)."""
    folder = folder_of(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    rows = []
    for upload in uploads:
        stored = secrets.token_hex(16)
        path = folder / stored
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        written.append(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(upload.data)
        row = Attachment(stored_name=stored, original_name=upload.name, content_type=upload.content_type,
                         size=len(upload.data))
        ticket.attachments.append(row)
        session.flush()
        audit.record(session, actor, "attachment.add", row, ticket=ticket.id, type=upload.content_type,
                     size=row.size)
        rows.append(row)
    return rows


def discard(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def path_of(state_dir: Path, attachment: Attachment) -> Path:
    if not attachment.stored_name.isalnum():  # never a path from the database
        raise ValueError("bad stored name")
    return folder_of(state_dir) / attachment.stored_name
