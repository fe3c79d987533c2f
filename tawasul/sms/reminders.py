"""Reminders before a session (setting `sms_reminders`, e.g. "24h,1h"; empty: none), queued by the
sender at each poll.

A reminder X before a session is due from X before its start until the next, shorter reminder
is due (so a sender that was down sends only the latest useful one), for appointments still
booked, and only if the appointment was booked more than X before its start (otherwise the
booking's own message has just said it). Each is queued once: its key, "reminder-<minutes>m-<id>",
is unique in the outbox.
"""
from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from tawasul import booking, outbox
from tawasul.db import Database
from tawasul.models import Appointment, AppointmentStatus, OutboxMessage
from tawasul.settings import Settings, SettingsError

UNITS = {"m": 1, "h": 60, "d": 1440}


def offsets(text: str) -> list[dt.timedelta]:
    """ "24h,1h" -> [24 h, 1 h], longest first."""
    found = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)\s*([mhd])", part)
        if not match or int(match.group(1)) == 0:
            raise SettingsError(f"sms_reminders: {part!r} is not a time before the session such as 24h, 90m or 2d")
        found.append(dt.timedelta(minutes=int(match.group(1)) * UNITS[match.group(2)]))
    return sorted(set(found), reverse=True)


def key(offset: dt.timedelta, appointment_id: int) -> str:
    return f"reminder-{int(offset.total_seconds() // 60)}m-{appointment_id}"


def _due(session, before: list[dt.timedelta], now: dt.datetime) -> dict[str, Appointment]:
    """{key: appointment} of the reminders due now and not queued yet."""
    todo = {}
    for offset, shorter in zip(before, [*before[1:], dt.timedelta(0)]):
        due = session.scalars(sa.select(Appointment).where(
            Appointment.status == AppointmentStatus.BOOKED,
            Appointment.slot_start > now + shorter, Appointment.slot_start <= now + offset)).all()
        todo.update({key(offset, a.id): a for a in due if a.created_at <= a.slot_start - offset})
    if todo:
        queued = session.scalars(sa.select(OutboxMessage.key).where(OutboxMessage.key.in_(todo)))
        for message_key in queued:
            del todo[message_key]
    return todo


def queue_due(db: Database, settings: Settings, now: dt.datetime) -> int:
    """Queue the reminders due now that are not queued yet; returns how many."""
    before = offsets(settings.sms_reminders)
    if not before:
        return 0
    with db.read() as session:
        if not _due(session, before, now):
            return 0
    queued = 0
    with db.write() as session:
        plan = booking.schedule(session)
        for message_key, appointment in _due(session, before, now).items():
            language = outbox.language_for(session, appointment)
            try:
                with session.begin_nested():  # another sender may queue it at the same moment
                    outbox.queue(session, appointment.citizen.mobile,
                                 outbox.appointment_text(plan, appointment, "reminder", language),
                                 language, appointment, key=message_key)
                queued += 1
            except sa.exc.IntegrityError:
                pass
    return queued
