"""Freeze windows in time: when an occurrence is active, and whether two windows overlap.

Weekly windows are read in their own time zone (a Friday 16:00 Berlin window follows DST), and their
duration is elapsed time, so a window may run across midnight or into the next week. A time zone
that does not exist cannot tell us when the window is: it is then treated as active whenever it
would be active in *some* UTC offset, which freezes more rather than less.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stanch.core.models.common import parse_duration
from stanch.core.models.policy import FreezeWindow, Weekday, WeeklySchedule

Interval = tuple[datetime, datetime]

WEEKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI, Weekday.SAT, Weekday.SUN)
# Every offset in use, in quarter hours (UTC-12:00 .. UTC+14:00).
_ANY_OFFSET = tuple(timezone(timedelta(minutes=15 * q)) for q in range(-48, 57))
# Overlaps between recurring windows are searched over a year so DST shifts are seen too.
OVERLAP_HORIZON = timedelta(days=366)


def zone_of(schedule: WeeklySchedule) -> ZoneInfo | None:
    """The schedule's zone, or None when the name is not a known IANA zone."""
    try:
        return ZoneInfo(schedule.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _starts(schedule: WeeklySchedule, zone: tzinfo, first: date, last: date) -> Iterator[datetime]:
    hour, minute = (int(part) for part in schedule.start_time.split(":"))
    day = first
    while day <= last:
        if WEEKDAYS[day.weekday()] in schedule.days:
            yield datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
        day += timedelta(days=1)


def occurrences(window: FreezeWindow, start: datetime, end: datetime) -> list[Interval]:
    """Occurrences of ``window`` that intersect ``[start, end)``, in UTC."""
    if window.start is not None and window.end is not None:
        s, e = window.start.astimezone(UTC), window.end.astimezone(UTC)
        return [(s, e)] if s < end and start < e else []
    schedule = window.schedule
    if schedule is None:  # excluded by validation; nothing to freeze
        return []
    length = parse_duration(schedule.duration)
    zone = zone_of(schedule)
    zones: tuple[tzinfo, ...] = (zone,) if zone is not None else _ANY_OFFSET
    # A window started up to a week (its longest duration) plus a day of offset before `start`.
    first = (start - length - timedelta(days=1)).date()
    last = (end + timedelta(days=1)).date()
    found = {
        (s, s + length)
        for z in zones
        for s in _starts(schedule, z, first, last)
        if s < end and start < s + length
    }
    return sorted(found)


def active_until(window: FreezeWindow, now: datetime) -> datetime | None:
    """The end of the occurrence containing ``now``, or None when the window is not active."""
    moment = now.astimezone(UTC)
    ends = [e for s, e in occurrences(window, moment, moment + timedelta(microseconds=1)) if s <= moment]
    return max(ends) if ends else None


def overlap(a: FreezeWindow, b: FreezeWindow, now: datetime) -> Interval | None:
    """The first moment from ``now`` on when both windows are active, as an interval, or None.

    Windows that have ended are ignored: old release freezes pile up in Git and must not make a
    policy invalid forever.
    """
    start = now.astimezone(UTC)
    end = start + OVERLAP_HORIZON
    ours = occurrences(a, start, end)
    theirs = occurrences(b, start, end)
    best: Interval | None = None
    for s1, e1 in ours:
        for s2, e2 in theirs:
            s, e = max(s1, s2, start), min(e1, e2)
            if s < e and (best is None or s < best[0]):
                best = (s, e)
    return best


def describe(window: FreezeWindow) -> str:
    """``release`` (Fri 16:00 for 64h Europe/Berlin) or ``migration`` (2025-03-01T00:00Z..)."""
    if window.schedule is not None:
        s = window.schedule
        days = ",".join(d.value for d in s.days)
        return f"{window.name} ({days} {s.start_time} for {s.duration} {s.time_zone})"
    if window.start is not None and window.end is not None:
        return f"{window.name} ({stamp(window.start)}..{stamp(window.end)})"
    return window.name


def stamp(moment: datetime) -> str:
    """A compact UTC time for messages."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
