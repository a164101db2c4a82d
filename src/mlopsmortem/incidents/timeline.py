"""Timestamps and timelines: the text's timestamped lines as (time, event) rows, read into
comparable times, and the incident's start, end and duration when the timeline gives them.

Times are kept in the text's own time zone (never converted). A time without a date takes the
date of the line before it, rolling to the next day when the clock goes backwards, as
chronological timelines do; without any date it stays HH:MM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlopsmortem.incidents.sections import Section
from mlopsmortem.incidents.types import TimelineEntry

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_TIME = r"(?P<hour>\d{1,2})[:h.](?P<minute>\d{2})(?::\d{2})?\s*(?P<ampm>[ap]\.?m\.?)?"
# A time zone is upper case, whole ("14:22 With ..." is a time and a word).
_ZONE = r"(?:\s*\(?(?-i:UTC|GMT|CET|CEST|PST|PDT|EST|EDT|[A-Z]{1,4}T)(?:[+-]\d{1,2})?\)?\b)?"
_DATE = (
    r"(?:(?P<iso>\d{4}-\d{2}-\d{2})"
    rf"|(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?{_MONTH}\s+(?P<day>\d{{1,2}})"
    r"(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{4}))?"
    rf"|(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<month2>"
    + "|".join(sorted(MONTHS, key=len, reverse=True))
    + r")\.?,?\s+(?P<year2>\d{4}))"
)
# A stamp at the start of a line: a date and time, a date, or a time (with an optional zone).
STAMP = re.compile(
    rf"^(?:{_DATE}(?:[ T,]+(?:at\s+)?{_TIME}{_ZONE})?|{_TIME.replace('?P<', '?P<t')}{_ZONE})",
    re.IGNORECASE,
)
_LINE_PREFIX = re.compile(r"^\s*(?:[-*+•]\s+|\d+[.)]\s+|\|\s*)?(?:\*\*|__)?\s*")
_EVENT_SEPARATOR = re.compile(r"^\s*(?:\*\*|__)?\s*(?:[-–—:|]\s*)?")
_EVENT_MAX_CHARS = 400
_YEAR = re.compile(r"\b(19[89]\d|20[0-4]\d)\b")
_PLACEHOLDER_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}\s+--:--")

# An entry that says the incident is over.
RESOLVED = re.compile(
    r"\b(resolved|incident (is )?(ends|over|closed)|all (systems|services)\b.{0,30}\boperational|"
    r"(back|returns?|returned) to (normal|working)|self-?heal\w*|"
    r"fully (restored|recovered|operational)|"
    r"(service|site|traffic|everything)\b.{0,20}\b(restored|resumes|recovered|back)|"
    r"restored|recovered|mitigated|solved|confirmed working|working again|"
    r"operating normally|is (back )?up again|okay again)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Stamp:
    """A stamp read from a line: its text and what it says (parts that are missing are None)."""

    text: str
    date: tuple[int | None, int, int] | None  # (year, month, day)
    time: tuple[int, int] | None  # (hour, minute)
    end: int  # where the stamp ends in the line


def read_stamp(line: str) -> Stamp | None:
    """The stamp a line starts with, or None."""
    match = STAMP.match(line)
    if not match or not match.group(0).strip():
        return None
    parts = match.groupdict()
    date: tuple[int | None, int, int] | None = None
    if parts.get("iso"):
        year, month, day = (int(x) for x in parts["iso"].split("-"))
        date = (year, month, day)
    elif parts.get("month") and parts.get("day"):
        year_text = parts.get("year")
        date = (
            int(year_text) if year_text else None,
            MONTHS[parts["month"].lower()],
            int(parts["day"]),
        )
    elif parts.get("month2"):
        date = (int(parts["year2"]), MONTHS[parts["month2"].lower()], int(parts["day2"]))
    hour = parts.get("hour") or parts.get("thour")
    minute = parts.get("minute") or parts.get("tminute")
    ampm = (parts.get("ampm") or parts.get("tampm") or "").lower().replace(".", "")
    time: tuple[int, int] | None = None
    if hour is not None and minute is not None:
        h, m = int(hour), int(minute)
        if ampm == "pm" and h < 12:
            h += 12
        elif ampm == "am" and h == 12:
            h = 0
        if h < 24 and m < 60:
            time = (h, m)
    if date is None and time is None:
        return None
    if date is not None and not (1 <= date[1] <= 12 and 1 <= date[2] <= 31):
        return None
    return Stamp(match.group(0).strip(), date, time, match.end())


def _iso(date: tuple[int, int, int] | None, time: tuple[int, int] | None) -> str | None:
    if date is None:
        return f"{time[0]:02d}:{time[1]:02d}" if time else None
    day = f"{date[0]:04d}-{date[1]:02d}-{date[2]:02d}"
    return f"{day} {time[0]:02d}:{time[1]:02d}" if time else day


@dataclass(frozen=True)
class TimelineLine:
    entry: TimelineEntry
    offset: int  # where the line starts in the text
    moment: datetime | None  # a full date and time; None when either is missing
    clock: int | None  # minutes since the day's start (for timelines without dates)
    headline: str  # the event's first two lines: what says the incident is over, if anything


def text_year(text: str) -> int | None:
    """The first plausible year the text names (the incident's year, as a rule)."""
    match = _YEAR.search(text)
    return int(match.group(1)) if match else None


def _stamped_lines(text: str, start: int, end: int) -> list[tuple[int, Stamp, str, str]]:
    """(offset, stamp, event) of each line of text[start:end] that starts with a stamp; a stamp
    alone on its line takes the next non-empty line as its event."""
    found: list[tuple[int, Stamp, str, str]] = []
    lines = text[start:end].split("\n")
    position = start
    offsets = []
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    for index, line in enumerate(lines):
        if re.match(r"^\s*\|?\s*:?-{3,}", line):
            continue  # a table's separator row
        prefix = _LINE_PREFIX.match(line)
        body = line[prefix.end() if prefix else 0 :]
        if _PLACEHOLDER_TIME.match(body):
            continue
        stamp = read_stamp(body)
        if stamp is None:
            continue
        event = body[stamp.end :]
        event = _EVENT_SEPARATOR.sub("", event, count=1).strip().strip("|").strip()
        event = re.sub(r"\s*\|\s*", " · ", event).strip(" ·*")
        headline = event
        if not event:  # the stamp stands alone: its event is the lines up to the next stamp
            parts: list[str] = []
            for following in lines[index + 1 :]:
                if read_stamp(_LINE_PREFIX.sub("", following, count=1)) is not None:
                    break
                if following.strip():
                    parts.append(following.strip())
                if sum(len(part) for part in parts) > _EVENT_MAX_CHARS:
                    break
            event = " ".join(parts)[:_EVENT_MAX_CHARS]
            headline = " ".join(parts[:2])
        if event:
            found.append((offsets[index], stamp, event, headline))
    return found


def read_timeline(text: str, sections: list[Section]) -> list[TimelineLine]:
    """The timeline: stamped lines of the Timeline sections, or, without one, of the whole text
    when at least three lines start with a stamp."""
    spans = [(s.start, s.end) for s in sections if s.kind == "timeline"]
    stamped = [item for start, end in spans for item in _stamped_lines(text, start, end)]
    if not stamped:
        stamped = _stamped_lines(text, 0, len(text))
        if len(stamped) < 3:
            return []
    year = text_year(text)
    lines: list[TimelineLine] = []
    current: tuple[int, int, int] | None = None
    last_clock: int | None = None
    for offset, stamp, event, headline in stamped:
        if stamp.date is not None:
            y, m, d = stamp.date
            if y is None:
                y = current[0] if current else year
            current = (y, m, d) if y is not None else None
            last_clock = None
        clock = stamp.time[0] * 60 + stamp.time[1] if stamp.time else None
        if clock is not None and last_clock is not None and clock < last_clock and current:
            rolled = datetime(*current) + timedelta(days=1)
            current = (rolled.year, rolled.month, rolled.day)
        if clock is not None:
            last_clock = clock
        date = current if stamp.date is not None or current else None
        moment = datetime(*date, *stamp.time) if date and stamp.time else None
        entry = TimelineEntry(stamp.text, _iso(date, stamp.time), event)
        lines.append(TimelineLine(entry, offset, moment, clock if date is None else None, headline))
    return lines


@dataclass(frozen=True)
class Span:
    start: TimelineLine
    end: TimelineLine
    minutes: float


def _minutes(a: TimelineLine, b: TimelineLine) -> float | None:
    if a.moment is not None and b.moment is not None:
        return (b.moment - a.moment).total_seconds() / 60
    if a.clock is not None and b.clock is not None:
        return float(b.clock - a.clock)
    return None


def timeline_span(lines: list[TimelineLine]) -> Span | None:
    """From the first timed line to the first later line that says the incident is over. A
    first line more than a week before the next is background, not the start."""
    timed = [line for line in lines if line.moment is not None or line.clock is not None]
    if len(timed) >= 2:
        gap = _minutes(timed[0], timed[1])
        if gap is not None and gap > 7 * 24 * 60:
            timed = timed[1:]
    if len(timed) < 2:
        return None
    start = timed[0]
    for line in timed[1:]:
        if RESOLVED.search(line.headline):
            minutes = _minutes(start, line)
            if minutes is not None and minutes > 0:
                return Span(start, line, minutes)
            return None
    return None


_DATE_ANYWHERE = re.compile(_DATE, re.IGNORECASE)


def find_date(text: str) -> str | None:
    """The first full date (with a year) the text names, as YYYY-MM-DD."""
    for match in _DATE_ANYWHERE.finditer(text):
        stamp = read_stamp(text[match.start() :])
        if stamp is not None and stamp.date is not None and stamp.date[0] is not None:
            year, month, day = stamp.date
            return f"{year:04d}-{month:02d}-{day:02d}"
    return None
