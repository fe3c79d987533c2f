"""Reports for the governor's office and IT: sessions held per day and week, no-shows, average
session duration (from call records), complaints by category and status, overdue follow-ups.

Days are local to the region's zone. Rows are grouped in Python after a range query on UTC
times, so the same code gives the same answer on SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul.models import Appointment, AppointmentStatus, Call, Ticket, TicketKind, TicketStatus

OPEN_TICKET = (TicketStatus.RECEIVED, TicketStatus.UNDER_REVIEW, TicketStatus.REFERRED)


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    held: int = 0
    no_shows: int = 0
    calls: int = 0
    average_seconds: float | None = None


@dataclass(frozen=True)
class WeekRow:
    week: str          # ISO week, e.g. 2030-W01
    start: dt.date     # its Monday
    held: int = 0
    no_shows: int = 0


def _utc_range(start: dt.date, end: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end+1 00:00) local, as UTC."""
    lo = dt.datetime.combine(start, dt.time(), tzinfo=zone).astimezone(dt.timezone.utc)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.timezone.utc)
    return lo, hi


def sessions_by_day(session: Session, start: dt.date, end: dt.date, zone: ZoneInfo) -> list[DayRow]:
    """Every day in [start, end]: sessions held (completed), no-shows, answered calls and their
    average duration (answer to end)."""
    lo, hi = _utc_range(start, end, zone)
    rows = session.execute(
        sa.select(Appointment.slot_start, Appointment.status)
        .where(Appointment.slot_start >= lo, Appointment.slot_start < hi,
               Appointment.status.in_([AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW]))).all()
    held: dict[dt.date, int] = {}
    missed: dict[dt.date, int] = {}
    for slot, status in rows:
        day = slot.astimezone(zone).date()
        target = held if status == AppointmentStatus.COMPLETED else missed
        target[day] = target.get(day, 0) + 1
    durations: dict[dt.date, list[float]] = {}
    calls = session.execute(
        sa.select(Call.answer_at, Call.end_at)
        .where(Call.answer_at.is_not(None), Call.end_at.is_not(None), Call.answer_at >= lo, Call.answer_at < hi)).all()
    for answered, ended in calls:
        seconds = (ended - answered).total_seconds()
        if seconds >= 0:
            durations.setdefault(answered.astimezone(zone).date(), []).append(seconds)
    out, day = [], start
    while day <= end:
        spans = durations.get(day, [])
        out.append(DayRow(day, held.get(day, 0), missed.get(day, 0), len(spans),
                          round(sum(spans) / len(spans), 1) if spans else None))
        day += dt.timedelta(days=1)
    return out


def sessions_by_week(days: list[DayRow]) -> list[WeekRow]:
    weeks: dict[tuple[int, int], list[int]] = {}
    for row in days:
        year, week, _ = row.day.isocalendar()
        totals = weeks.setdefault((year, week), [0, 0])
        totals[0] += row.held
        totals[1] += row.no_shows
    return [WeekRow(f"{y}-W{w:02d}", dt.date.fromisocalendar(y, w, 1), held, missed)
            for (y, w), (held, missed) in sorted(weeks.items())]


def average_duration(days: list[DayRow]) -> float | None:
    """Over the whole range, weighted by calls."""
    total = sum((r.average_seconds or 0) * r.calls for r in days)
    count = sum(r.calls for r in days)
    return round(total / count, 1) if count else None


def complaints_by_category(session: Session, start: dt.date, end: dt.date, zone: ZoneInfo) -> list[tuple[str, str, int]]:
    """(category, status, count) for complaints filed in [start, end]."""
    lo, hi = _utc_range(start, end, zone)
    rows = session.execute(
        sa.select(Ticket.category, Ticket.status, sa.func.count())
        .where(Ticket.kind == TicketKind.COMPLAINT, Ticket.created_at >= lo, Ticket.created_at < hi)
        .group_by(Ticket.category, Ticket.status)).all()
    return sorted(((category or "", status.value, count) for category, status, count in rows))


@dataclass(frozen=True)
class Overdue:
    reference: str
    kind: str
    status: str
    due_date: dt.date
    days_late: int
    department: str


def overdue_followups(session: Session, today: dt.date) -> list[Overdue]:
    """Open tickets past their due date, the latest first."""
    tickets = session.scalars(
        sa.select(Ticket).where(Ticket.due_date.is_not(None), Ticket.due_date < today,
                                Ticket.status.in_(OPEN_TICKET))
        .order_by(Ticket.due_date, Ticket.reference)).all()
    return [Overdue(t.reference, t.kind.value, t.status.value, t.due_date, (today - t.due_date).days,
                    t.department.code if t.department else "") for t in tickets]
