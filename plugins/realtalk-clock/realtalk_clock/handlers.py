"""The clock tools' handlers. Errors raised here reach the model as tool output."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown IANA time zone {name!r}; use a name such as Europe/Paris or Asia/Tokyo"
        ) from None


def _now() -> datetime:
    return datetime.now(dt_timezone.utc)


def _describe(moment: datetime) -> dict[str, Any]:
    offset = moment.strftime("%z")
    return {
        "iso": moment.isoformat(timespec="seconds"),
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H:%M"),
        "weekday": moment.strftime("%A"),
        "utc_offset": f"{offset[:3]}:{offset[3:]}",
        "abbreviation": moment.tzname(),
    }


def get_time(timezone: str = "UTC") -> dict[str, Any]:
    """Current date and time in ``timezone``."""
    zone = _zone(timezone)
    return {"timezone": timezone, **_describe(_now().astimezone(zone))}


def convert_time(time: str, from_timezone: str, to_timezone: str) -> dict[str, Any]:
    """Convert ``time`` (HH:MM, today in ``from_timezone``, or a full date-time)."""
    source, target = _zone(from_timezone), _zone(to_timezone)
    text = time.replace(" ", "T")
    if "T" in text:
        naive = datetime.fromisoformat(text)
    else:
        hour, minute, *rest = (int(p) for p in text.split(":"))
        today = _now().astimezone(source)
        naive = datetime(today.year, today.month, today.day, hour, minute, rest[0] if rest else 0)
    start = naive.replace(tzinfo=source)
    end = start.astimezone(target)
    return {
        "from": {"timezone": from_timezone, **_describe(start)},
        "to": {"timezone": to_timezone, **_describe(end)},
    }


def _human(seconds: float) -> str:
    remaining = int(abs(seconds))
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return ", ".join(parts) or "less than a minute"


def time_until(moment: str, timezone: str = "UTC") -> dict[str, Any]:
    """Seconds and a spoken form of the time until ``moment`` (negative when past)."""
    try:
        when = datetime.fromisoformat(moment.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"moment {moment!r} is not an ISO 8601 date and time such as 2026-12-31T23:59"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_zone(timezone))
    seconds = (when - _now()).total_seconds()
    return {
        "moment": when.isoformat(timespec="seconds"),
        "seconds": round(seconds),
        "in_past": seconds < 0,
        "spoken": (_human(seconds) + " ago") if seconds < 0 else ("in " + _human(seconds)),
    }
