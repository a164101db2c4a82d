"""Durations the text states: "for 47 minutes", "lasting 1 hour and 48 minutes", "a 30min
outage", "from 16:58 to 18:46 UTC", "approximately 2 weeks".

Only a duration whose sentence says it is the incident's (outage, downtime, lasted, impact …)
counts; "a timeout of 300 ms" or "every 5 minutes" never does. Of several, the one in the
title, lead, summary or impact section wins, then the earliest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlopsmortem.incidents.timeline import read_stamp

_WORD_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "forty-five": 45,
    "half an": 0.5,
    "half a": 0.5,
}
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}
_NUMBER = r"(\d+(?:\.\d+)?|" + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True)) + ")"
_UNIT = r"(minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\b"
_COMPOUND = re.compile(
    r"\b(\d+)\s*(?:h|hrs?|hours?)\s*(?:and\s*|,\s*)?(\d+)\s*(?:m|mins?|minutes?)\b", re.IGNORECASE
)
_SIMPLE = re.compile(rf"\b{_NUMBER}(?:\+?\s*|\s*-\s*)?{_UNIT}", re.IGNORECASE)
_RANGE_START = re.compile(r"\b(?:from|between)\s+", re.IGNORECASE)
_RANGE_SEPARATOR = re.compile(r"\s*(?:to|until|till|through|and|-{1,2}|–|—)\s*", re.IGNORECASE)
# Time spent on something else than the incident: "Investigation Time: ~6 hours".
_OTHER_TIME = re.compile(
    r"\b(investigat\w*|detect\w*|debug\w*|analysis|review|meeting|response)\s*(time|took|"
    r"lasted)?\s*:?\s*(about |approximately |~)?$",
    re.IGNORECASE,
)
_ELSEWHERE = re.compile(
    r"\b(previous(ly)?|last time|earlier incident|once before|in the past)\b", re.I
)
# The sentence speaks of the incident lasting.
_ABOUT_INCIDENT = re.compile(
    r"\b(time to (recovery|resolution|resolve|restore|mitigat)|period of|duration|outage|"
    r"downtime|down|"
    r"incident|lasted|lasting|for (about |approximately |around |roughly |"
    r"over |nearly |almost |~)?\d|unavailab|degrad|disrupt|impact|affected|interruption|"
    r"failed|failing|broken|went unnoticed|errors?|lost|delay|lag)",
    re.IGNORECASE,
)
# Words right before the number that make it something else than the incident's length.
_NOT_LENGTH = re.compile(
    r"(every|each|per|timeout( of)?|interval( of)?|ttl( of)?|after|within|in|up to|under|"
    r"than|last|past|next|of|to|by|cache[ds]?( for)?|ago)\s*(about |approximately |~)?$",
    re.IGNORECASE,
)
_LENGTH_LEAD = re.compile(
    r"(for|lasted|lasting|lasts|took|total( of)?|duration( of|:)?|approximately|about|around|"
    r"roughly|over|nearly|almost|~|period of|time to (recovery|resolution|resolve|restore|"
    r"mitigat\w*)\s*:?|(outage|downtime|duration|disruption)\s+(was|is|of))"
    r"\s*(about |approximately |around |roughly |~)?$",
    re.IGNORECASE,
)
_AFTER_OK = re.compile(
    r"^\s*(-?long|of (total |complete |full |partial )?(downtime|outage|degrad|disruption|impact)"
    r"|outage|downtime|incident)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StatedDuration:
    minutes: float
    start: int  # offset of the phrase in the text
    end: int
    phrase: str
    exact: bool = False  # a range of clock times, not a rounded "about 3 hours"


def _value(number: str) -> float:
    key = number.lower()
    return float(_WORD_NUMBERS[key]) if key in _WORD_NUMBERS else float(number)


def _ranges(sentence: str, year: int | None) -> list[tuple[int, int, float]]:
    """(start, end, minutes) of each "from <time> to <time>" in the sentence; the times may
    carry dates ("from November 11, 4:02 PM UTC to November 14, 3:02 PM UTC")."""
    found = []
    for match in _RANGE_START.finditer(sentence):
        first = read_stamp(sentence[match.end() :])
        if first is None or first.time is None:
            continue
        rest_at = match.end() + first.end
        separator = _RANGE_SEPARATOR.match(sentence, rest_at)
        if separator is None:
            continue
        second = read_stamp(sentence[separator.end() :])
        if second is None or second.time is None:
            continue
        base_year = (first.date and first.date[0]) or year or 2001
        day_one = (base_year, *first.date[1:]) if first.date else (base_year, 1, 1)
        day_two = ((second.date[0] or base_year), *second.date[1:]) if second.date else day_one
        begin = datetime(*day_one, *first.time)  # type: ignore[arg-type]
        finish = datetime(*day_two, *second.time)  # type: ignore[arg-type]
        if finish <= begin and second.date is None:
            finish += timedelta(days=1)  # "from 23:10 to 00:40"
        minutes = (finish - begin).total_seconds() / 60
        if minutes > 0:
            found.append((match.start(), separator.end() + second.end, minutes))
    return found


def stated_durations(
    sentence: str, offset: int = 0, year: int | None = None
) -> list[StatedDuration]:
    """The incident durations a sentence states (offsets shifted by `offset`); `year` dates a
    range whose dates name none. A sentence about an earlier occurrence states none."""
    if not _ABOUT_INCIDENT.search(sentence) or _ELSEWHERE.search(sentence):
        return []
    found: list[StatedDuration] = []
    taken: list[tuple[int, int]] = []
    for found_range in _ranges(sentence, year):
        start, end, minutes = found_range
        phrase = sentence[start:end]
        found.append(StatedDuration(minutes, offset + start, offset + end, phrase, exact=True))
        taken.append((start, end))
    for pattern in (_COMPOUND, _SIMPLE):
        for match in pattern.finditer(sentence):
            if any(a <= match.start() < b for a, b in taken):
                continue
            before = sentence[max(0, match.start() - 40) : match.start()]
            after = sentence[match.end() : match.end() + 30]
            unit_text = match.group(2).lower() if pattern is _SIMPLE else ""
            if unit_text == "m" or (unit_text in ("d", "w", "h") and " " in match.group(0)):
                continue  # "42m" is a log line's age, "5 m" metres, more often than minutes
            if _OTHER_TIME.search(before):
                continue
            if _NOT_LENGTH.search(before) and not _LENGTH_LEAD.search(before):
                continue
            if not (_LENGTH_LEAD.search(before) or _AFTER_OK.match(after)):
                continue
            if pattern is _COMPOUND:
                minutes = int(match.group(1)) * 60 + int(match.group(2))
            else:
                unit = match.group(2).lower()[0]
                minutes = _value(match.group(1)) * _UNIT_MINUTES[unit]
            found.append(
                StatedDuration(
                    minutes, offset + match.start(), offset + match.end(), match.group(0)
                )
            )
            taken.append(match.span())
    return sorted(found, key=lambda d: d.start)
