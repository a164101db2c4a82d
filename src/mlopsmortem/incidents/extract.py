"""One story's incident card from its text (or, without text, its list summary).

Every field is extractive: sentences and timeline lines of the text itself, located by the
section they sit in (Summary, Root cause, Resolution, Action items, Timeline) or by word cues,
each with its evidence. A field the text does not state stays unknown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mlopsmortem.incidents.cues import DETECTION_CUES, NEGATION, TRIGGER_CUES
from mlopsmortem.incidents.durations import stated_durations
from mlopsmortem.incidents.sections import Section, Sentence, sentences, split_sections
from mlopsmortem.incidents.timeline import find_date, read_timeline, text_year, timeline_span
from mlopsmortem.incidents.types import TRIGGERS, FieldEvidence, IncidentCard

# Bumped whenever a change to this package can change a card: every card is re-derived.
EXTRACTOR_VERSION = "5"

# How much a trigger cue counts in each kind of section: narrating sections most, plans for
# the future (action items) not at all.
SECTION_WEIGHTS = {
    "title": 1.5,
    "lead": 1.0,
    "summary": 1.5,
    "what_happened": 1.0,
    "root_cause": 1.5,
    "impact": 0.5,
    "timeline": 0.5,
    "detection": 0.5,
    "resolution": 0.3,
    "other": 0.5,
    "lessons": 0.2,
    "action_items": 0.0,
}
TRIGGER_THRESHOLD = 2.5
CAUSAL_BOOST = 2.0
TOP_TRIGGER_MIN = 0.5
SECOND_TRIGGER_RATIO = 0.5
FIX_DAMPING = 0.3
MAX_TRIGGERS = 3
_NEGATION_WINDOW = 40
_SUMMARY_SENTENCES = 3
_SUMMARY_MAX_CHARS = 480
_MAX_ACTION_ITEMS = 10
_MAX_TIMELINE = 80
_QUOTE_CHARS = 300

_CAUSAL = re.compile(
    r"\b(root cause|caused|causing|due to|because|triggered|resulted in|resulting in|led to|"
    r"leading to|stemmed from|result of|culprit|was the reason|responsible for)\b",
    re.IGNORECASE,
)
_TIME_TO_RECOVERY = re.compile(r"\btime to (recovery|resolution|resolve|restore)", re.IGNORECASE)
# A heading run into its paragraph by the page's layout: "Summary Over nine days ...".
_HEADING_WORD = re.compile(
    r"^(summary|tl;\s?dr|overview|abstract|incident summary)\s*[:.—–-]?\s+(?=[A-Z0-9])",
    re.IGNORECASE,
)
# Words that say something went wrong.
_WENT_WRONG = re.compile(
    r"\b(outage|went down|was down|downtime|fail\w*|errors?|broke|broken|unavailab\w*|"
    r"degrad\w*|lost|loss|crash\w*|stopped|unable|could not|couldn't|inaccessible|"
    r"not (working|shipped|available|reachable|accessible)|expired|disrupt\w*|corrupt\w*|"
    r"compromis\w*|timed out|missing|wrong|deleted|revert\w*|exception|throw\w*)\b",
    re.IGNORECASE,
)
# A header of "Key: value" fields ("Investigation Date: ... Status: ..."), not a sentence.
_METADATA = re.compile(r"^(\W*[A-Z][\w ]{0,25}: \S[^.]{0,80}){2,}")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_LINK_ONLY = re.compile(r"^[\w\s-]*:?\s*https?://\S+$")
_CAUSE = re.compile(
    r"\b(root cause (was|is|of)|(was|were) caused by|the cause (was|is)|caused by|"
    r"due to|because of|triggered by|stemmed from|resulted from)\b",
    re.IGNORECASE,
)
_FIX = re.compile(
    r"\b((resolved|fixed|mitigated|restored|recovered) (it |this |the (issue|problem|incident) )?"
    r"(by|after|when)|we (rolled back|reverted|restarted|renewed|replaced|redeployed|"
    r"increased|scaled|deleted|cordoned|drained|manually|re-?enabled|disabled|patched)|"
    r"rolled back|roll(ing|ed)? back)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PassageSpan:
    id: int
    start: int
    end: int


@dataclass(frozen=True)
class _Located:
    kind: str
    sentence: Sentence


def _prose(sentence: Sentence) -> bool:
    words = sentence.text.split()
    if len(words) < 5 or sentence.text.startswith("|") or _LINK_ONLY.match(sentence.text):
        return False
    return not sentence.text.rstrip().endswith(":")


def _negated(sentence: str, position: int) -> bool:
    """A negation or a plan in the cue's own clause, within a few words before it."""
    window = sentence[max(0, position - _NEGATION_WINDOW) : position]
    clause = re.split(r"[;,:—–]| but | and then ", window)[-1]
    return bool(NEGATION.search(clause))


def _clean(text: str) -> str:
    text = _BULLET.sub("", text)
    return re.sub(r"\s+", " ", text.replace("**", "").replace("__", "")).strip()


class _Evidence:
    def __init__(self, passages: Sequence[PassageSpan], from_list: bool) -> None:
        self.passages = passages
        self.from_list = from_list

    def at(self, offset: int, method: str, confidence: float, quote: str) -> FieldEvidence:
        passage = None
        if not self.from_list:
            passage = next((p.id for p in self.passages if p.start <= offset < p.end), None)
            method = method
        else:
            method = f"list-summary, {method}"
        return FieldEvidence(passage, method, confidence, _clean(quote)[:_QUOTE_CHARS])


def _summary(text: str, sections: list[Section]) -> tuple[list[Sentence], str] | None:
    """Up to three consecutive prose sentences of the first Summary section (else the lead,
    else the first paragraph); a header of "Key: value" fields is not prose."""
    for kinds, method in (
        (("summary",), "summary section"),
        (("lead",), "lead"),
        (("what_happened", "other"), "first paragraph"),
    ):
        for section in sections:
            if section.kind not in kinds:
                continue
            runs: list[list[Sentence]] = [[]]
            for sentence in sentences(text, section.start, section.end):
                if _prose(sentence) and not _BULLET.match(sentence.text):
                    if not _METADATA.search(sentence.text):
                        runs[-1].append(sentence)
                elif runs[-1]:
                    runs.append([])
            prose = [run for run in runs if run]
            if not prose:
                continue
            chosen: list[Sentence] = []
            for sentence in prose[0]:
                if chosen and sum(len(s.text) for s in chosen) + len(sentence.text) > (
                    _SUMMARY_MAX_CHARS
                ):
                    break
                chosen.append(sentence)
                if len(chosen) == _SUMMARY_SENTENCES:
                    break
            if not any(_WENT_WRONG.search(s.text) for s in chosen):
                # an opening of background only: its first sentence, then the first one of
                # the section that says what went wrong
                later = [s for s in prose[0][len(chosen) :] if _WENT_WRONG.search(s.text)]
                if later:
                    chosen = [chosen[0], later[0]]
            return chosen, method
    return None


def _first_sentences(text: str, sections: list[Section], kind: str, count: int) -> list[Sentence]:
    for section in sections:
        if section.kind == kind:
            found = [s for s in sentences(text, section.start, section.end) if _prose(s)]
            if found:
                return found[:count]
    return []


def _cue_sentence(located: list[_Located], pattern: re.Pattern[str]) -> Sentence | None:
    for item in located:
        if item.kind in ("action_items", "lessons"):
            continue
        match = pattern.search(item.sentence.text)
        if match and not _negated(item.sentence.text, match.start()):
            return item.sentence
    return None


def build_card(
    story_id: str,
    title: str,
    text: str,
    list_summary: str = "",
    passages: Sequence[PassageSpan] = (),
) -> IncidentCard | None:
    """The card of one story; None when it has neither text nor a list summary."""
    from_list = not text.strip()
    if from_list:
        if not list_summary.strip():
            return None
        text = f"{title}\n\n{list_summary}"
    evidence = _Evidence(passages, from_list)
    sections = split_sections(text)
    title_end = text.find("\n") if "\n" in text else len(text)
    located = [_Located("title", Sentence(0, title_end, text[:title_end].strip()))]
    located += [_Located(s.kind, x) for s in sections for x in sentences(text, s.start, s.end)]
    fields: dict[str, FieldEvidence] = {}

    summary = None
    found_summary = _summary(text, sections)
    if found_summary:
        chosen, method = found_summary
        summary = _HEADING_WORD.sub("", " ".join(_clean(s.text) for s in chosen))
        confidence = 0.9 if method == "summary section" else 0.7
        fields["summary"] = evidence.at(chosen[0].start, method, confidence, chosen[0].text)

    triggers = _triggers(located, evidence, fields)
    detection = _detection(text, sections, located, evidence, fields)

    lines = read_timeline(text, sections)
    timeline = tuple(line.entry for line in lines[:_MAX_TIMELINE])
    incident_date = find_date(text[: max(title_end, 1)]) or find_date(
        " ".join(x.sentence.text for x in located[:12])
    )
    duration, started_at, resolved_at = None, incident_date, None
    stated = _stated_duration(located, text_year(text))
    span = timeline_span(lines)
    if stated is not None:
        duration = stated.minutes
        fields["duration_minutes"] = evidence.at(stated.start, "stated", 0.8, stated.sentence)
    elif span is not None:
        duration = span.minutes
        quote = f"{span.start.entry.time} {span.start.entry.event} … {span.end.entry.time} "
        quote += span.end.entry.event
        fields["duration_minutes"] = evidence.at(span.end.offset, "timeline", 0.6, quote)
    if span is not None:
        started_at = _dated(span.start.entry.at, incident_date)
        resolved_at = _dated(span.end.entry.at, incident_date)
        fields["started_at"] = evidence.at(
            span.start.offset, "timeline", 0.6, span.start.entry.event
        )
        fields["resolved_at"] = evidence.at(span.end.offset, "timeline", 0.6, span.end.entry.event)
    elif incident_date:
        fields["started_at"] = evidence.at(0, "date in the text", 0.5, incident_date)

    root_cause = _statement(text, sections, located, "root_cause", _CAUSE, evidence, fields)
    resolution = _statement(text, sections, located, "resolution", _FIX, evidence, fields)
    action_items = _action_items(text, sections, evidence, fields)
    if lines:
        fields["timeline"] = evidence.at(
            lines[0].offset, "timeline section", 0.8, lines[0].entry.event
        )
    return IncidentCard(
        story_id=story_id,
        summary=summary,
        triggers=triggers,
        detection=detection,
        started_at=started_at,
        resolved_at=resolved_at,
        duration_minutes=duration,
        root_cause=root_cause,
        resolution=resolution,
        action_items=action_items,
        timeline=timeline,
        evidence=fields,
    )


def _dated(at: str | None, date: str | None) -> str | None:
    if at and len(at) == 5 and date:  # HH:MM on the day the text names
        return f"{date} {at}"
    return at


def _triggers(
    located: list[_Located], evidence: _Evidence, fields: dict[str, FieldEvidence]
) -> tuple[str, ...]:
    scores: dict[str, float] = {}
    best: dict[str, tuple[float, Sentence]] = {}
    for item in located:
        weight = SECTION_WEIGHTS.get(item.kind, 0.5)
        if weight <= 0:
            continue
        sentence_text = item.sentence.text
        if _CAUSAL.search(sentence_text):
            weight *= CAUSAL_BOOST  # "caused by", "due to": the sentence names what set it off
        elif _FIX.search(sentence_text):
            weight *= FIX_DAMPING  # "we increased the timeout": the remedy, not the trigger
        matched = {}
        for trigger, pattern in TRIGGER_CUES.items():
            match = pattern.search(sentence_text)
            if match and not _negated(sentence_text, match.start()):
                matched[trigger] = match
        if "dependency-failure" in matched:
            matched.pop("latent-bug", None)  # a provider's bug is the provider failing
        for trigger in matched:
            scores[trigger] = scores.get(trigger, 0.0) + weight
            if trigger not in best or weight > best[trigger][0]:
                best[trigger] = (weight, item.sentence)
    ranked = sorted(scores, key=lambda t: (-scores[t], list(TRIGGERS).index(t)))
    top = scores[ranked[0]] if ranked else 0.0
    # the best-supported trigger when any cue narrates the incident; others only when they
    # are well supported on their own and beside it
    chosen = [
        t
        for rank, t in enumerate(ranked[:MAX_TRIGGERS])
        if (rank == 0 and top >= TOP_TRIGGER_MIN)
        or (scores[t] >= TRIGGER_THRESHOLD and scores[t] >= SECOND_TRIGGER_RATIO * top)
    ]
    for trigger in chosen:
        sentence = best[trigger][1]
        confidence = min(0.95, 0.4 + 0.1 * scores[trigger])
        fields[f"trigger:{trigger}"] = evidence.at(
            sentence.start, "word cues", confidence, sentence.text
        )
    return tuple(sorted(chosen, key=list(TRIGGERS).index))


def _detection(
    text: str,
    sections: list[Section],
    located: list[_Located],
    evidence: _Evidence,
    fields: dict[str, FieldEvidence],
) -> str | None:
    order = ("detection", "timeline", "title", "lead", "summary", "what_happened", "other")
    for kinds, confidence in ((order[:1], 0.9), (order[1:2], 0.75), (order[2:], 0.65)):
        for item in located:
            if item.kind not in kinds:
                continue
            hits = []
            for detection, pattern in DETECTION_CUES.items():
                match = pattern.search(item.sentence.text)
                if match and not _negated(item.sentence.text, match.start()):
                    hits.append((match.start(), detection))
            if hits:
                detection = min(hits)[1]
                fields["detection"] = evidence.at(
                    item.sentence.start, f"word cues in {item.kind}", confidence, item.sentence.text
                )
                return detection
    return None


@dataclass(frozen=True)
class _Stated:
    minutes: float
    start: int
    sentence: str


def _stated_duration(located: list[_Located], year: int | None) -> _Stated | None:
    # the summary and impact sections state a duration best; a title rounds it ("30min
    # outage"); a clock-time range is exact where "about 3 hours" in the same sentence is not
    order = {"summary": 0, "impact": 0, "lead": 1, "what_happened": 1, "title": 2}
    candidates: list[tuple[int, int, int, _Stated]] = []
    for item in located:
        if item.kind == "action_items":
            continue
        for found in stated_durations(item.sentence.text, item.sentence.start, year):
            # a template's "Time to recovery: 84 minutes" is the most explicit statement
            explicit = _TIME_TO_RECOVERY.search(item.sentence.text)
            rank = -1 if explicit else order.get(item.kind, 3)
            stated = _Stated(found.minutes, found.start, item.sentence.text)
            candidates.append((rank, item.sentence.start, 0 if found.exact else 1, stated))
    return min(candidates, key=lambda c: c[:3])[3] if candidates else None


def _statement(
    text: str,
    sections: list[Section],
    located: list[_Located],
    kind: str,
    pattern: re.Pattern[str],
    evidence: _Evidence,
    fields: dict[str, FieldEvidence],
) -> str | None:
    chosen = _first_sentences(text, sections, kind, 2)
    if chosen:
        fields[kind] = evidence.at(
            chosen[0].start, f"{kind.replace('_', ' ')} section", 0.85, chosen[0].text
        )
        return " ".join(_clean(s.text) for s in chosen)
    sentence = _cue_sentence(located, pattern)
    if sentence is None:
        return None
    fields[kind] = evidence.at(sentence.start, "word cues", 0.55, sentence.text)
    return _clean(sentence.text)


def _action_items(
    text: str, sections: list[Section], evidence: _Evidence, fields: dict[str, FieldEvidence]
) -> tuple[str, ...]:
    items: list[tuple[int, str]] = []
    for section in sections:
        if section.kind != "action_items":
            continue
        position = section.start
        for line in text[section.start : section.end].split("\n"):
            if _BULLET.match(line) and len(line.split()) >= 3:
                items.append((position, _clean(line)[:_QUOTE_CHARS]))
            position += len(line) + 1
    if not items:
        return ()
    items = items[:_MAX_ACTION_ITEMS]
    fields["action_items"] = evidence.at(items[0][0], "action items section", 0.85, items[0][1])
    return tuple(item for _, item in items)
