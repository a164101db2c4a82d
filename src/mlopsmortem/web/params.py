"""Request parsing and result shapes behind the Datasette plugin (plugins/mlopsmortem_*.py).

Datasette loads each file of `--plugins-dir` by path as its own module, so the plugin files
cannot import each other; what they share lives in the package: here the per-instance state,
the model loading, parameter parsing and the URLs and JSON/template shapes of results; in
`mlopsmortem.web.queries` what runs on Datasette's connections. Nothing here registers a hook.
`datasette` and `request` arguments are Datasette 0.65 objects, used through their public
attributes (`urls`, `databases`, `plugin_config`, `setting`, `request.args`), Datasette's
plugin manager (`datasette.plugins.pm`) to see which permission hooks are installed, and one
private attribute, `_metadata_local`, only to know when the metadata was replaced.
"""

from __future__ import annotations

import math
import threading
import urllib.parse
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
from datasette.utils import PrefixedUrlString, add_cors_headers, tilde_encode
from datasette.utils.asgi import Response

from mlopsmortem.errors import MlopsmortemError
from mlopsmortem.passages.embed import decode_vector, load_model
from mlopsmortem.search.types import MODES
from mlopsmortem.search.vectors import embed_query
from mlopsmortem.settings import DEFAULT_MODEL, Settings

PLUGIN = "mlopsmortem-search"  # the plugin's configuration key in Datasette metadata
DEFAULT_N = 10
MAX_N = 50
MAX_OFFSET = 1000
SINCE_YEARS = (1900, 9999)  # a four-digit year
MAX_FILTER_VALUES = 20
MAX_FILTER_CHARS = 200
SIMILAR_ON_ROW_PAGE = 5
# Up to this size a search is a few milliseconds of mostly Python (GIL-holding) work, which a
# SQL thread would not run beside the event loop anyway, while the hop there and back costs
# 0.3-0.7 ms (demo database, 243 passages, loaded 2-core machine). Synthetic knowledge bases
# (bench/serve_kb.py), library search p50 / max: 2,000 passages 3.3 / 6.3 ms, every query
# word common 5.8 / 8.3 ms; 5,000 passages 3.7 / 9.2 ms, every word common 12 / 17 ms.
DEFAULT_INLINE_MAX_PASSAGES = 2000
FILTERS = ("component", "impact", "source", "link_status")  # repeatable parameters
FACET_TITLES = {
    "component": "Component",
    "impact": "Impact",
    "since": "Year",
    "source": "Source list",
    "link_status": "Link status",
}


class BadRequest(MlopsmortemError):
    """A request the plugin refuses, with the HTTP status to answer it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class QueryArgs(Protocol):
    """What is read of a query string (Datasette's MultiParams)."""

    def get(self, name: str, default: Any = None) -> Any: ...

    def getlist(self, name: str) -> list[str]: ...


# --------------------------------------------------------------------------- per-instance state


@dataclass
class State:
    """What the plugin knows about one Datasette instance."""

    database: str  # Datasette's name for the knowledge base
    path: str
    settings: Settings
    time_limit_ms: int
    warm: bool
    # The prefixes of every hit's links, built once instead of per hit (base_url and the
    # database's route are fixed for the life of a Datasette instance)
    stories_url: str  # datasette.urls.table(database, "stories")
    similar_url: str  # datasette.urls.path("-/similar/")
    warm_started: bool = False
    # Knowledge bases of at most this many passages are queried on the event loop's thread
    # (see mlopsmortem.web.queries.execute); 0: always on Datasette's SQL threads
    inline_max_passages: int = DEFAULT_INLINE_MAX_PASSAGES
    inline: bool = False  # the last size check's verdict
    inline_checked_at: float = -math.inf  # time.monotonic() of that check
    # read-only connections of the threads that ran inline work (the event loop's)
    local: threading.local = field(default_factory=threading.local, repr=False)


# Keyed weakly by the Datasette instance: tests and `serve` build several in one process, and
# an instance that is gone must not keep its state (nor be confused with a new one at its id).
_STATES: weakref.WeakKeyDictionary[Any, State] = weakref.WeakKeyDictionary()


def plugin_config(datasette: Any) -> dict[str, Any]:
    return datasette.plugin_config(PLUGIN) or {}


TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def config_flag(config: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false plugin setting: a YAML or JSON boolean, or what people write for one when
    it comes through an environment variable ($env): "false", "0", "no", "off" and their
    opposites. Anything else is an error naming the setting, not a silent True."""
    value = config.get(name, default)
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"plugin {PLUGIN} setting {name}: expected true or false, got {value!r}")


async def kb_state(datasette: Any) -> State | None:
    """The knowledge base of this instance: configured, else the first with `passages`."""
    state = _STATES.get(datasette)
    if state is not None:
        return state
    config = plugin_config(datasette)
    wanted = config.get("database")
    found = None
    for name, db in datasette.databases.items():
        if db.is_memory or name.startswith("_") or not db.path:
            continue
        if wanted and name != wanted:
            continue
        if await db.table_exists("passages"):
            found = db
            break
    if found is None:
        return None
    base = Settings()
    settings = Settings(
        db_path=Path(found.path),
        quiet=True,
        model_name=str(config.get("model") or DEFAULT_MODEL),
        max_query_chars=int(config.get("max_query_chars") or base.max_query_chars),
    )
    state = State(
        database=found.name,
        path=str(found.path),
        settings=settings,
        time_limit_ms=int(config.get("time_limit_ms") or datasette.setting("sql_time_limit_ms")),
        warm=config_flag(config, "warm", True),
        stories_url=str(datasette.urls.table(found.name, "stories")),
        similar_url=str(datasette.urls.path("-/similar/")),
        inline_max_passages=int(config.get("inline_max_passages", DEFAULT_INLINE_MAX_PASSAGES)),
    )
    _STATES[datasette] = state
    return state


# The one permission hook Datasette 0.65 installs itself (datasette/default_permissions.py).
DATASETTE_PERMISSION_HOOK = "datasette.default_permissions"


def _has_allow_block(node: Any) -> bool:
    if isinstance(node, dict):
        return "allow" in node or any(_has_allow_block(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_allow_block(value) for value in node)
    return False


def nothing_can_refuse(datasette: Any) -> bool:
    """Whether no permission rule of this Datasette could refuse anyone a view.

    True only when Datasette's own permission hook is the only one installed, no plugin supplies
    metadata, and the metadata has no `allow` key anywhere (instance, database, table, query;
    any spelling of any table). Datasette's view checks then answer "no opinion" at every
    level, which `ensure_permissions` treats as allowed, for every actor. Any of these absent
    (an auth plugin, one `allow` block) and `ensure_visible` asks Datasette. Why not always
    ask: in 0.65.5 the view-table check deep-copies the whole metadata and reads sqlite_master
    on a SQL thread, about 0.45 ms, a quarter of a cached search on a small knowledge base;
    this test costs a few microseconds (its metadata walk is kept: `_metadata_has_allow`)."""
    from datasette.app import Datasette
    from datasette.plugins import pm  # Datasette's plugin manager: registered hooks

    # a subclass or a patched instance may decide differently from the hooks
    if type(datasette).permission_allowed is not Datasette.permission_allowed or (
        "permission_allowed" in vars(datasette)
    ):
        return False
    hooks = pm.hook
    if {impl.plugin_name for impl in hooks.permission_allowed.get_hookimpls()} != {
        DATASETTE_PERMISSION_HOOK
    }:
        return False
    if hooks.get_metadata.get_hookimpls():
        return False
    return not _metadata_has_allow(datasette)


# Per Datasette instance: (the metadata object it was given, whether it has an `allow` key).
_ALLOW_IN_METADATA: weakref.WeakKeyDictionary[Any, tuple[Any, bool]] = weakref.WeakKeyDictionary()


def _metadata_has_allow(datasette: Any) -> bool:
    """_has_allow_block(datasette.metadata()), walked once per metadata object.

    The walk visits every node of the metadata (about 280 with our table and column
    descriptions): 0.035 ms per request. Datasette 0.65 keeps the metadata it was constructed
    with in `_metadata_local` and never edits it (plugins that change metadata do so through
    `get_metadata`, and `nothing_can_refuse` refuses those), so the answer holds as long as
    that object is the same one; an instance without the attribute is walked every time."""
    given = getattr(datasette, "_metadata_local", None)
    cached = _ALLOW_IN_METADATA.get(datasette)
    if given is not None and cached is not None and cached[0] is given:
        return cached[1]
    found = _has_allow_block(datasette.metadata())
    if given is not None:
        _ALLOW_IN_METADATA[datasette] = (given, found)
    return found


async def ensure_visible(datasette: Any, request: Any, state: State) -> None:
    """Raise datasette.Forbidden (a 403) unless Datasette's own checks allow the request's
    actor to view the stories table (then its database, then the instance): a knowledge base
    published with `allow` rules stays private on the search, similar and feed pages too.
    Skipped when `nothing_can_refuse`: the checks would allow any actor."""
    if nothing_can_refuse(datasette):
        return
    await datasette.ensure_permissions(
        request.actor,
        [
            ("view-table", (state.database, "stories")),
            ("view-database", state.database),
            "view-instance",
        ],
    )


async def visible_state(datasette: Any, request: Any) -> State | None:
    """kb_state, once `ensure_visible` passed."""
    state = await kb_state(datasette)
    if state is not None:
        await ensure_visible(datasette, request, state)
    return state


# orjson's options that keep what json.dumps(data, default=str) accepted: keys that are not
# strings (written as strings), numpy scalars (as numbers), anything else through str()
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_response(datasette: Any, data: dict[str, Any], status: int = 200) -> Response:
    """The data as a JSON response (UTF-8, compact), with a Content-Length: the server then
    frames the body by its length instead of in chunks, which saves a write (and a wake-up of
    the client) for the closing chunk of every response. orjson instead of json.dumps: a
    search page of 10 hits (13 KB) takes 0.01 ms instead of 0.06, a twentieth of a cached
    search on the demo database."""
    body = orjson.dumps(data, default=str, option=JSON_OPTIONS)
    response = Response(
        body,
        status=status,
        headers={"content-length": str(len(body))},
        content_type="application/json; charset=utf-8",
    )
    if datasette.cors:
        add_cors_headers(response.headers)
    return response


def error_response(datasette: Any, message: str, status: int) -> Response:
    return json_response(datasette, {"ok": False, "error": message, "status": status}, status)


# --------------------------------------------------------------------------- model

# Process-wide like the model cache of mlopsmortem.passages.embed they guard: the lock makes
# concurrent first requests wait for the one loading the model instead of each loading a copy.
_MODEL_LOCK = threading.Lock()
_LOADED: set[str] = set()


def ensure_model(model_name: str) -> None:
    """Load the model once per process; concurrent callers wait for the one loading it."""
    if model_name in _LOADED:
        return
    with _MODEL_LOCK:
        if model_name not in _LOADED:
            load_model(model_name)
            _LOADED.add(model_name)


def query_vector(text: str, model_name: str) -> np.ndarray:
    ensure_model(model_name)
    return embed_query(text, model_name)


def mm_cosine(a: Any, b: Any) -> float | None:
    """The mm_cosine SQL function: cosine of two float32 vector BLOBs, else NULL."""
    if not isinstance(a, bytes | memoryview) or not isinstance(b, bytes | memoryview):
        return None
    if len(a) != len(b) or not len(a) or len(a) % 4:
        return None
    va, vb = decode_vector(bytes(a)), decode_vector(bytes(b))
    norms = float(np.sqrt(np.dot(va, va) * np.dot(vb, vb)))
    if norms == 0.0:
        return None
    return float(np.dot(va, vb)) / norms


# --------------------------------------------------------------------------- request parsing


@dataclass
class Params:
    q: str = ""
    mode: str = "hybrid"
    component: list[str] = field(default_factory=list)
    impact: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    link_status: list[str] = field(default_factory=list)
    since: int | None = None
    n: int = DEFAULT_N
    offset: int = 0
    facets: bool = False

    def filters(self) -> dict[str, Any]:
        return {
            "components": self.component,
            "impacts": self.impact,
            "since": self.since,
            "sources": self.source,
            "link_status": self.link_status,
        }

    def has_filters(self) -> bool:
        return self.since is not None or any(getattr(self, name) for name in FILTERS)

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
    """The search parameters of a query string, validated and bounded (BadRequest if not)."""
    q = (args.get("q") or "").strip()
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


# --------------------------------------------------------------------------- URLs and shapes


def typed_query(args: QueryArgs, max_query_chars: int) -> Params:
    """Only the query the visitor typed (`q`, cut to the limit), for a page whose other
    parameters were refused or do not apply: the search box and links back keep it."""
    return Params(q=str(args.get("q") or "")[:max_query_chars])


SEARCH_N_ARG = "sn"  # the search's page size, in the links of pages that have an `n` of their own


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


def with_search_state(url: str, back: Params | None) -> str:
    """`url` carrying the search `back` leads to (see search_state); `url` alone without one."""
    if back is None:
        return url
    pairs = [(SEARCH_N_ARG if k == "n" else k, v) for k, v in back.pairs(facets=False)]
    return url + "?" + urllib.parse.urlencode(pairs) if pairs else url


def safe_href(url: Any) -> str | None:
    """An http(s) URL to link to, or None (no javascript:, data: or relative links)."""
    if not isinstance(url, str):
        return None
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme.lower() in ("http", "https") and parsed.netloc:
        return url.strip()
    return None


def story_path(state: State, story_id: str) -> str:
    """datasette.urls.row(state.database, "stories", tilde_encode(story_id)), the same string."""
    return PrefixedUrlString(f"{state.stories_url}/{tilde_encode(story_id)}")


def similar_path(state: State, story_id: str, json: bool = False) -> str:
    """datasette.urls.path(f"-/similar/{quoted id}[.json]"), the same string, from the prefix
    kept in `state`."""
    quoted = urllib.parse.quote(story_id, safe="")
    return PrefixedUrlString(state.similar_url + quoted + (".json" if json else ""))


def search_url(datasette: Any, params: Params, *, json: bool = False, **changes: Any) -> str:
    path = datasette.urls.path("-/search" + (".json" if json else ""))
    query = urllib.parse.urlencode(params.pairs(**changes))
    return f"{path}?{query}" if query else str(path)


def feed_url(datasette: Any, params: Params) -> str:
    """The Atom feed of a search: its query and filters, newest matches first (no paging)."""
    if not params.q and not params.has_filters():
        return datasette.urls.path("-/feeds/new.atom")
    path = datasette.urls.path("-/feeds/search.atom")
    pairs = params.pairs(n=DEFAULT_N, offset=0, facets=False)
    return f"{path}?{urllib.parse.urlencode(pairs)}"


def hit_dict(datasette: Any, state: State, hit: Any) -> dict[str, Any]:
    data = hit.to_dict()
    data["story_url"] = story_path(state, hit.id)
    data["similar_url"] = similar_path(state, hit.id, json=True)
    return data


def hit_view(
    datasette: Any, state: State, hit: Any, params: Params | None, back: Params | None = None
) -> dict[str, Any]:
    """What the HTML templates need of one hit; every string is escaped by Jinja except
    `snippet_marked`, which the library already escaped. Tag chips refine the search `params`
    (a new search without them); the story and similar links carry the search `back`, so the
    pages they open lead back to it."""
    view = hit.to_dict()
    view["story_url"] = with_search_state(story_path(state, hit.id), back)
    view["similar_url"] = with_search_state(similar_path(state, hit.id), back)
    view["href"] = safe_href(hit.url)
    chips = []
    for kind, values in (("component", hit.components), ("impact", hit.impacts)):
        for value in values:
            link = None
            if params is not None and value.lower() not in {
                v.lower() for v in getattr(params, kind)
            }:
                link = search_url(
                    datasette, params, **{kind: [*getattr(params, kind), value], "offset": 0}
                )
            elif params is None:
                link = search_url(datasette, Params(), **{kind: [value]})
            chips.append({"kind": kind, "value": value, "url": link})
    view["chips"] = chips
    return view
