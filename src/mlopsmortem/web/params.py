"""Reading the plugin's query strings: the search parameters, validated and bounded.

`parse_params` refuses what it cannot serve with a `BadRequest` carrying the HTTP status;
`search_state` reads the search a story or similar page came from leniently, leaving out
what would be refused, so a way back never fails. Nothing here touches Datasette.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.search.types import MODES

DEFAULT_N = 10
MAX_N = 50
MAX_OFFSET = 1000
SINCE_YEARS = (1900, 9999)  # a four-digit year
MAX_FILTER_VALUES = 20
MAX_FILTER_CHARS = 200
# repeatable parameters; the last three are the incident card's (trigger, detection, band ids)
FILTERS = ("component", "impact", "source", "link_status", "trigger", "detection", "duration")
SEARCH_N_ARG = "sn"  # the search's page size, in the links of pages that have an `n` of their own
# Control characters no query or filter value has a use for (tab and line breaks, which a
# pasted error message may hold, are whitespace). A NUL would reach FTS5 as an unterminated
# string: refused before any SQL.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class BadRequest(MlopsmortemError):
    """A request the plugin refuses, with the HTTP status to answer it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class QueryArgs(Protocol):
    """What is read of a query string (Datasette's MultiParams)."""

    def get(self, name: str, default: Any = None) -> Any: ...

    def getlist(self, name: str) -> list[str]: ...


@dataclass
class Params:
    """The parameters of one search: query, mode, filters, page (`n`, `offset`), facets."""

    q: str = ""
    mode: str = "hybrid"
    component: list[str] = field(default_factory=list)
    impact: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    link_status: list[str] = field(default_factory=list)
    trigger: list[str] = field(default_factory=list)
    detection: list[str] = field(default_factory=list)
    duration: list[str] = field(default_factory=list)
    since: int | None = None
    n: int = DEFAULT_N
    offset: int = 0
    facets: bool = False

    def filters(self) -> dict[str, Any]:
        """The filters as the library's keyword arguments (search, story_filter_sql)."""
        return {
            "components": self.component,
            "impacts": self.impact,
            "since": self.since,
            "sources": self.source,
            "link_status": self.link_status,
            "triggers": self.trigger,
            "detections": self.detection,
            "durations": self.duration,
        }

    def has_filters(self) -> bool:
        return self.since is not None or any(getattr(self, name) for name in FILTERS)

    def browsing(self) -> bool:
        """Filters without a query: the stories passing them, newest first
        (mlopsmortem.search.browse), instead of a search."""
        return not self.q and self.has_filters()

    def pairs(self, **changes: Any) -> list[tuple[str, str]]:
        """Query-string pairs of these parameters (defaults left out), with changes applied."""
        values = {
            "q": self.q,
            "mode": self.mode,
            **{name: list(getattr(self, name)) for name in FILTERS},
            "since": self.since,
            "n": self.n,
            "offset": self.offset,
            "facets": self.facets,
        }
        values.update(changes)
        out: list[tuple[str, str]] = []
        if values["q"]:
            out.append(("q", values["q"]))
        if values["mode"] != "hybrid":
            out.append(("mode", values["mode"]))
        for name in FILTERS:
            out.extend((name, v) for v in values[name])
        if values["since"] is not None:
            out.append(("since", str(values["since"])))
        if values["n"] != DEFAULT_N:
            out.append(("n", str(values["n"])))
        if values["offset"]:
            out.append(("offset", str(values["offset"])))
        if values["facets"]:
            out.append(("facets", "1"))
        return out


def int_arg(args: QueryArgs, name: str, default: int | None) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None


def bounded_n(args: QueryArgs, default: int = DEFAULT_N) -> int:
    n = int_arg(args, "n", default)
    if n is None or n < 1:
        raise BadRequest(f"n must be between 1 and {MAX_N}")
    return min(n, MAX_N)


def parse_params(args: QueryArgs, max_query_chars: int, *, default_n: int = DEFAULT_N) -> Params:
    """The search parameters of a query string, validated and bounded (BadRequest if not):
    a control character (NUL...) in the query or a filter value is a 400, refused here,
    before any SQL."""
    q = (args.get("q") or "").strip()
    if CONTROL_CHARACTERS.search(q):
        raise BadRequest("the query contains a control character; type or paste plain text")
    if len(q) > max_query_chars:
        raise BadRequest(
            f"The query is {len(q):,} characters long; the limit is {max_query_chars:,}. "
            "Shorten it to a few distinctive words or an error message."
        )
    mode = (args.get("mode") or "hybrid").strip().lower()
    if mode not in MODES:
        raise BadRequest(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    params = Params(q=q, mode=mode)
    for name in FILTERS:
        values = list(dict.fromkeys(v.strip() for v in args.getlist(name) if v and v.strip()))
        if len(values) > MAX_FILTER_VALUES:
            raise BadRequest(f"at most {MAX_FILTER_VALUES} values of {name}")
        if any(len(v) > MAX_FILTER_CHARS for v in values):
            raise BadRequest(f"a {name} value is too long")
        if any(CONTROL_CHARACTERS.search(v) for v in values):
            raise BadRequest(f"a {name} value contains a control character")
        setattr(params, name, values)
    since = int_arg(args, "since", None)
    if since is not None and not SINCE_YEARS[0] <= since <= SINCE_YEARS[1]:
        raise BadRequest("since must be a four-digit year")
    params.since = since
    params.n = bounded_n(args, default_n)
    offset = int_arg(args, "offset", 0) or 0
    if offset < 0 or offset > MAX_OFFSET:
        raise BadRequest(
            f"offset must be between 0 and {MAX_OFFSET}; narrow the search with filters instead"
        )
    params.offset = offset
    params.facets = (args.get("facets") or "").lower() in ("1", "true", "yes", "on")
    return params


def typed_query(args: QueryArgs, max_query_chars: int) -> Params:
    """Only the query the visitor typed (`q`, cut to the limit), for a page whose other
    parameters were refused or do not apply: the search box and links back keep it, without
    control characters (which parse_params refuses)."""
    return Params(q=CONTROL_CHARACTERS.sub("", str(args.get("q") or ""))[:max_query_chars])


class _SearchArgs:
    """A story or similar page's query string read as the search's: `sn` stands for `n`, and a
    page size, offset, mode or year that would be refused is left out (its default), so that
    it alone does not lose the query and filters of the way back."""

    def __init__(self, args: QueryArgs) -> None:
        self._args = args

    _NUMBERS = {"n": (1, MAX_N), "offset": (0, MAX_OFFSET), "since": SINCE_YEARS}

    def get(self, name: str, default: Any = None) -> Any:
        if name != "mode" and name not in self._NUMBERS:
            return self._args.get(name, default)
        raw = str(self._args.get(SEARCH_N_ARG if name == "n" else name) or "").strip()
        if name == "mode":
            valid = raw.lower() in MODES
        else:  # a few digits only: int() refuses over 4,300 digits with a ValueError
            lowest, highest = self._NUMBERS[name]
            valid = len(raw) <= 6 and raw.isascii() and raw.isdigit()
            valid = valid and lowest <= int(raw) <= highest
        return raw if valid else default

    def getlist(self, name: str) -> list[str]:
        return self._args.getlist(name)


def search_state(args: QueryArgs, max_query_chars: int) -> Params:
    """The search a story or similar page was reached from, which its links carry in their query
    string (q, mode, filters, page size as `sn` since `n` is the similar page's own, offset), to
    lead back to the same page of results. Values that would be refused are left out; a
    query over the limit or too many filter values fall back to the typed query, cut."""
    try:
        params = parse_params(_SearchArgs(args), max_query_chars)
    except BadRequest:
        params = typed_query(args, max_query_chars)
        params.q = params.q.strip()
        return params
    params.facets = False
    if not params.q:  # no results to page through without a query
        params.n, params.offset = DEFAULT_N, 0
    return params
