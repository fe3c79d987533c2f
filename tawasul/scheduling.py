"""The governor's session grid: which days, which slots. Decided in the region's zone, returned in UTC."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from tawasul.models import session_weekdays

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Plan:
    """The governor's schedule (GovernorSchedule and its holidays) as the rules read it: a frozen copy,
    so that one copy serves every request until the schedule changes (booking.schedule)."""
    id: int
    timezone: str
    session_days: str
    video_start: dt.time
    video_end: dt.time
    slot_minutes: int
    buffer_minutes: int
    in_person_start: dt.time
    in_person_capacity: int
    holiday_days: frozenset[dt.date]
    weekdays: frozenset[int] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "weekdays", frozenset(session_weekdays(self.session_days)))


def zone(schedule: Plan) -> ZoneInfo:
    return ZoneInfo(schedule.timezone)


def local_day(schedule: Plan, moment: dt.datetime) -> dt.date:
    return moment.astimezone(zone(schedule)).date()


def is_session_day(schedule: Plan, day: dt.date) -> bool:
    return day.weekday() in schedule.weekdays and day not in schedule.holiday_days


def _at(schedule: Plan, day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=zone(schedule)).astimezone(UTC)


def video_slots(schedule: Plan, day: dt.date) -> list[dt.datetime]:
    """Slot starts (UTC) on a local day: slot, buffer, slot, ... ending by the close of sessions."""
    if not is_session_day(schedule, day):
        return []
    start = _at(schedule, day, schedule.video_start)
    end = _at(schedule, day, schedule.video_end)
    length = dt.timedelta(minutes=schedule.slot_minutes)
    step = length + dt.timedelta(minutes=schedule.buffer_minutes)
    slots, current = [], start
    while current + length <= end:
        slots.append(current)
        current += step
    return slots


def video_slot_at(schedule: Plan, moment: dt.datetime) -> dt.datetime | None:
    """The slot that starts exactly at `moment`, or the one running at `moment` (for "now")."""
    length = dt.timedelta(minutes=schedule.slot_minutes)
    for start in video_slots(schedule, local_day(schedule, moment)):
        if start <= moment < start + length:
            return start
    return None


def in_person_session(schedule: Plan, day: dt.date) -> dt.datetime | None:
    """Start (UTC) of the governor's daily session at the emirate, or None on a day without one."""
    if not is_session_day(schedule, day):
        return None
    return _at(schedule, day, schedule.in_person_start)
