"""Recorded messages: a refused caller pressed 1 and spoke; the message becomes a complaint ticket.

The dialplan ([tawasul-deny], extensions.conf) records into `<instance_dir>/spool/messages/<uniqueid>.wav`
(inside Asterisk's root filesystem) and, as the call ends, reports it with UserEvent TawasulMessage
(File, Endpoint, Reason, Appointment, Status). The call watcher calls `file_message`, which finds the
file from the host through `<state_dir>/asterisk` (the link to the instance folder), never by the
path in the event (only its name, checked), stores it as the ticket's WAV attachment and removes
it from the spool. Idempotent: a replayed event finds the file gone, or the attachment already there.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import attachments, tickets
from tawasul.models import Appointment, Attachment, Call, Device, Ticket, TicketKind

log = logging.getLogger("tawasul.messages")
ACTOR = "asterisk"
NAME = re.compile(r"^[0-9]{1,20}\.[0-9]{1,10}\.wav$")  # <uniqueid>.wav
CATEGORY = "other"
REASONS_EN = {
    "no_appointment": "no appointment", "too_early": "too early", "too_late": "too late",
    "wrong_centre": "booked at another centre", "outside_hours": "outside session hours",
    "governor_unavailable": "the governor was not available", "bad_code": "booking code not verified",
    "unknown_device": "unknown device",
}


def spool_dir(state_dir: Path | str) -> Path:
    """Host path of the messages folder (provisioning.render.MESSAGE_FOLDER under the instance)."""
    return Path(state_dir) / "asterisk" / "spool" / "messages"


def file_message(session: Session, *, state_dir: Path | str, linkedid: str, file: str, endpoint: str,
                 reason: str, appointment_id: int | None, today: dt.date) -> Ticket | None:
    """File the recorded message as a complaint with the WAV attached; None if there is nothing to file."""
    name = PurePosixPath(file or "").name
    if not NAME.match(name):
        log.warning("message %r ignored: not a recording name", file)
        return None
    original = f"message-{name}"
    done = session.scalars(sa.select(Attachment).where(Attachment.original_name == original)).first()
    path = spool_dir(state_dir) / name
    if done is not None:
        path.unlink(missing_ok=True)
        return done.ticket
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        upload = attachments.recording(original, data)
    except Exception as exc:  # empty (hung up at once) or not a WAV: nothing to file
        log.info("message %s not filed: %s", name, exc)
        path.unlink(missing_ok=True)
        return None
    device = session.scalars(sa.select(Device).where(Device.sip_user == endpoint)).first() if endpoint else None
    centre = device.centre if device is not None else None
    appointment = session.get(Appointment, appointment_id) if appointment_id else None
    if appointment is None and linkedid:
        call = session.scalars(sa.select(Call).where(Call.uniqueid == linkedid)).first()
        appointment = call.appointment if call is not None else None
    where = centre.name_en if centre is not None else (endpoint or "an unknown phone")
    why = REASONS_EN.get(reason, "service unavailable")
    seconds = max(0, (len(data) - 44) // 16000)  # 8 kHz, 16-bit mono
    ticket = tickets.open_ticket(
        session, kind=TicketKind.COMPLAINT, category=CATEGORY, actor=ACTOR,
        subject=f"Recorded message from {where} (call refused: {why})",
        body=(f"A caller at {where} was refused ({why}) and left a recorded message of about {seconds} s, "
              f"attached. Call {linkedid}, device {endpoint or '-'}."),
        citizen=appointment.citizen if appointment is not None else None, appointment=appointment,
        due_date=today + dt.timedelta(days=tickets.DUE_DAYS[TicketKind.COMPLAINT]))
    ticket.department = tickets.default_department(session, CATEGORY)
    session.flush()
    written: list[Path] = []
    try:
        attachments.save(session, ticket, Path(state_dir), [upload], ACTOR, written)
        session.flush()
    except Exception:
        attachments.discard(written)
        raise
    path.unlink(missing_ok=True)
    log.info("message %s filed as ticket %s", name, ticket.reference)
    return ticket
