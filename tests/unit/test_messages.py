"""A refused caller's recorded message becomes one complaint ticket with its WAV attached."""
from __future__ import annotations

import datetime as dt
import io
import wave

import pytest
import sqlalchemy as sa

from tawasul import attachments, messages
from tawasul.models import Attachment, Ticket, TicketKind
from tawasul.validation import InvalidInput


def wav_bytes(seconds: float = 1.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1), sound.setsampwidth(2), sound.setframerate(8000)
        sound.writeframes(b"\x10\x00" * int(8000 * seconds))
    return out.getvalue()


def test_a_message_is_filed_once_and_leaves_the_spool(demo_db, settings):
    spool = messages.spool_dir(settings.state_dir)
    spool.mkdir(parents=True)
    (spool / "1795866663.42.wav").write_bytes(wav_bytes(2))
    event = dict(state_dir=settings.state_dir, linkedid="1795866663.42",
                 file="/srv/tawasul/x/spool/messages/1795866663.42.wav", endpoint="centre-hnk-1",
                 reason="no_appointment", appointment_id=None, today=dt.date(2026, 11, 28))
    with demo_db.write() as session:
        ticket = messages.file_message(session, **event)
        first = ticket.id
        assert ticket.kind is TicketKind.COMPLAINT and "Al-Hanakiyah" in ticket.subject
        assert ticket.department.code == "CIT" and ticket.due_date == dt.date(2026, 12, 12)
    assert not (spool / "1795866663.42.wav").exists()
    with demo_db.write() as session:
        assert messages.file_message(session, **event).id == first  # replayed event: nothing new
        [row] = session.scalars(sa.select(Attachment)).all()
        assert row.content_type == "audio/wav" and row.original_name == "message-1795866663.42.wav"
        assert attachments.path_of(settings.state_dir, row).read_bytes()[:4] == b"RIFF"
        assert session.scalar(sa.select(sa.func.count(Ticket.id))) == 1


@pytest.mark.parametrize("name", ["../../etc/passwd", "x.wav", "1.2.wav/../../a", ""])
def test_only_recording_names_are_read(demo_db, settings, name):
    with demo_db.write() as session:
        assert messages.file_message(session, state_dir=settings.state_dir, linkedid="1.2", file=name,
                                     endpoint="centre-hnk-1", reason="", appointment_id=None,
                                     today=dt.date(2026, 11, 28)) is None


def test_the_public_forms_still_refuse_audio():
    with pytest.raises(InvalidInput):
        attachments.check("message.wav", wav_bytes())
    with pytest.raises(InvalidInput):
        attachments.recording("message.wav", b"RIFF\x00\x00\x00\x00WAVE")  # header only: nothing said
