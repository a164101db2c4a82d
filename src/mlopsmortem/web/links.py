"""The URLs the plugin's pages and JSON answers link to.

Each is built as Datasette's own URL builders would build it (`datasette.urls`, `base_url`
included); story and similar links come from prefixes kept in `State`. Links from a search
carry it onwards (`with_search_state`), so the pages they open lead back to the same results.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from datasette.utils import PrefixedUrlString, tilde_encode

from mlopsmortem.web.params import DEFAULT_N, SEARCH_N_ARG, Params
from mlopsmortem.web.state import State


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
