"""Durations the text states: "for 47 minutes", "lasting 1 hour and 48 minutes", "a 30min
outage", "from 16:58 to 18:46 UTC", "approximately 2 weeks".

Only a duration whose sentence says it is the incident's (outage, downtime, lasted, impact …)
counts; "a timeout of 300 ms" or "every 5 minutes" never does. Of several, the one in the
title, lead, summary or impact section wins, then the earliest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
_SIMPLE = re.compile(rf"\b{_NUMBER}(?:\+|\s*-\s*|\s+)?{_UNIT}", re.IGNORECASE)
_RANGE = re.compile(
    r"\b(?:from|between)\s+(\d{1,2})[:.](\d{2})\s*(?:[A-Z]{2,4}\s*)?(?:to|and|until|-|–)\s*"
    r"(\d{1,2})[:.](\d{2})\b",
    re.IGNORECASE,
)
# The sentence speaks of the incident lasting.
_ABOUT_INCIDENT = re.compile(
    r"\b(time to (recovery|resolution|resolve|restore|mitigat)|period of|outage|downtime|down|"
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


def _value(number: str) -> float:
    key = number.lower()
    return float(_WORD_NUMBERS[key]) if key in _WORD_NUMBERS else float(number)


def stated_durations(sentence: str, offset: int = 0) -> list[StatedDuration]:
    """The incident durations a sentence states (offsets shifted by `offset`)."""
    if not _ABOUT_INCIDENT.search(sentence):
        return []
    found: list[StatedDuration] = []
    taken: list[tuple[int, int]] = []
    for match in _RANGE.finditer(sentence):
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        minutes = (h2 * 60 + m2) - (h1 * 60 + m1)
        if minutes <= 0:
            minutes += 24 * 60
        found.append(
            StatedDuration(minutes, offset + match.start(), offset + match.end(), match.group(0))
        )
        taken.append(match.span())
    for pattern in (_COMPOUND, _SIMPLE):
        for match in pattern.finditer(sentence):
            if any(a <= match.start() < b for a, b in taken):
                continue
            before = sentence[max(0, match.start() - 40) : match.start()]
            after = sentence[match.end() : match.end() + 30]
            unit_text = match.group(2).lower() if pattern is _SIMPLE else ""
            if unit_text == "m" or (unit_text in ("d", "w", "h") and " " in match.group(0)):
                continue  # "42m" is a log line's age, "5 m" metres, more often than minutes
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
