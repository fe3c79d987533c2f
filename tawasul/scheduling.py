"""The governor's session grid: which days, which slots. Decided in the region's zone, returned in UTC."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from tawasul.models import GovernorSchedule

UTC = dt.timezone.utc


def zone(schedule: GovernorSchedule) -> ZoneInfo:
    return ZoneInfo(schedule.timezone)


def local_day(schedule: GovernorSchedule, moment: dt.datetime) -> dt.date:
    return moment.astimezone(zone(schedule)).date()


def is_session_day(schedule: GovernorSchedule, day: dt.date) -> bool:
    return day.weekday() in schedule.weekdays and day not in {h.day for h in schedule.holidays}


def _at(schedule: GovernorSchedule, day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=zone(schedule)).astimezone(UTC)


def video_slots(schedule: GovernorSchedule, day: dt.date) -> list[dt.datetime]:
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


def video_slot_at(schedule: GovernorSchedule, moment: dt.datetime) -> dt.datetime | None:
    """The slot that starts exactly at `moment`, or the one running at `moment` (for "now")."""
    length = dt.timedelta(minutes=schedule.slot_minutes)
    for start in video_slots(schedule, local_day(schedule, moment)):
        if start <= moment < start + length:
            return start
    return None


def in_person_session(schedule: GovernorSchedule, day: dt.date) -> dt.datetime | None:
    """Start (UTC) of the governor's daily session at the emirate, or None on a day without one."""
    if not is_session_day(schedule, day):
        return None
    return _at(schedule, day, schedule.in_person_start)
