"""The JSON search API answered in front of Datasette's router, when the router decides nothing.

For `GET /-/search.json` from a client with no cookie and no credentials, on an instance where
no rule, plugin or setting could change the answer, everything Datasette 0.65 does around the
plugin's view is fixed in advance:

  - the actor is None: no cookie for Datasette's own `actor_from_request` to read, no other
    such hook, no `actor` put in the scope by an outer middleware, no other `asgi_wrapper`;
  - nothing can refuse the request (`mlopsmortem.web.params.nothing_can_refuse`);
  - the CSRF middleware lets every GET through, and adds nothing to a response that did not
    ask for a token (the JSON view never does);
  - the router finds the plugin's view, adds no message cookie, and marks the response as
    varying by `Cookie, Authorization` (its privacy policy: not personalised, so cacheable);
  - no `base_url` prefix, no `force_https_urls`, no `trace_debug` to apply.

Going through that stack costs 0.13-0.2 ms a request (the CSRF token it signs for every
cookie-less request, the router's scope copies and argument introspection), a tenth of a cached
search on the demo database. `direct_json_route` calls the same view with the request Datasette
would have built and sends its response with the same headers, so the answer is byte for byte
Datasette's (tests/test_plugin_direct.py compares them). A view that raises is answered by
Datasette's router's own error handling (its 404 page, `forbidden` and `handle_exception`
hooks), as the router would. Any other request, and every request until one has gone through
Datasette (which runs its startup hooks on the first), goes through Datasette unchanged. The
route is not installed when another plugin's route would answer the path first or Datasette's
tracer (`trace_debug`) is on, and the plugin setting `direct_json: false` turns it off.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from datasette.utils import await_me_maybe
from datasette.utils.asgi import Forbidden, NotFound, Request, Response

from mlopsmortem.web.params import nothing_can_refuse

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
View = Callable[[Any, Request], Awaitable[Response]]

# Datasette 0.65's own implementation of the actor hook: the signed `ds_actor` cookie.
DATASETTE_ACTOR_HOOK = "datasette.actor_auth_cookie"
# What Datasette's router adds to every response that no cookie or credential personalised.
VARY = (b"Cookie", b"Authorization")
CREDENTIAL_HEADERS = (b"cookie", b"authorization")


def datasette_decides_nothing(datasette: Any, wrapper_hook: Callable[..., Any]) -> bool:
    """Whether, for a request without cookie or credentials, Datasette's router and middleware
    around this plugin's routes could only do what `direct_json_route` does itself.
    wrapper_hook: the plugin's `asgi_wrapper` hook function, the only one allowed."""
    from datasette.plugins import pm  # Datasette's plugin manager: the installed hooks

    if datasette.setting("base_url") != "/" or datasette.setting("force_https_urls"):
        return False
    hooks = pm.hook
    if {impl.plugin_name for impl in hooks.actor_from_request.get_hookimpls()} - {
        DATASETTE_ACTOR_HOOK
    }:
        return False
    # another wrapper may authenticate (put an actor in the scope) or answer requests itself
    if any(impl.function is not wrapper_hook for impl in hooks.asgi_wrapper.get_hookimpls()):
        return False
    return nothing_can_refuse(datasette)


def answers_directly(scope: Scope, raw_path: bytes) -> bool:
    """Whether this request is a cookie-less, credential-less GET of exactly raw_path."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("actor") is not None:
        return False
    # Datasette routes by the raw path, undecoded (foo%2Fbar is not foo/bar)
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    if path.partition(b"?")[0] != raw_path:
        return False
    return not any(name.lower() in CREDENTIAL_HEADERS for name, _ in scope["headers"])


def vary_by_credentials(send: Send) -> Send:
    """send, with Datasette's Vary header added to the response start: the router's privacy
    policy for a response nothing personalised (datasette/app.py, DatasetteRouter.route_path)."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            vary = [
                part.strip()
                for key, value in headers
                if key.lower() == b"vary"
                for part in value.split(b",")
                if part.strip()
            ]
            if b"*" not in vary:
                for name in VARY:
                    if name.lower() not in {part.lower() for part in vary}:
                        vary.append(name)
            headers = [(k, v) for k, v in headers if k.lower() != b"vary"]
            headers.append((b"vary", b", ".join(vary)))
            message = dict(message, headers=headers)
        await send(message)

    return sending


def routed_view(datasette: Any, path: str) -> Any:
    """The view function of the first plugin route matching `path`, in the order Datasette's
    router tries them (plugins' routes come before its own), or None."""
    from datasette.plugins import pm

    for routes in pm.hook.register_routes(datasette=datasette):
        for pattern, view in routes or ():
            if re.match(pattern, path):
                return view
    return None


async def answer_error(datasette: Any, request: Request, send: Send, error: Exception) -> None:
    """What Datasette's router sends when a view raises `error` (DatasetteRouter.route_path)."""
    from datasette.app import DatasetteRouter  # for its error pages: no routes needed
    from datasette.plugins import pm

    router = DatasetteRouter(datasette, [])
    if isinstance(error, NotFound):
        await router.handle_404(request, send, error)
    elif isinstance(error, Forbidden):
        for response in pm.hook.forbidden(
            datasette=datasette, request=request, message=error.args[0]
        ):
            await (await await_me_maybe(response)).asgi_send(send)
            return
    else:
        await router.handle_exception(request, send, error)


def direct_json_route(
    datasette: Any,
    app: ASGIApp,
    *,
    path: str,
    view: View,
    wrapper_hook: Callable[..., Any],
) -> ASGIApp:
    """app, with GET requests of `path` that Datasette would answer in a fixed way (see the
    module's docstring) answered by `view(datasette, request)` directly. wrapper_hook: the
    `asgi_wrapper` hook function installing this route."""
    if datasette.setting("trace_debug") or routed_view(datasette, path) is not view:
        # Datasette's tracer wraps the app when it is built; another plugin's route would
        # answer first: Datasette answers every request
        return app
    raw_path = path.encode("ascii")
    started = False  # whether a request went through Datasette, which ran its startup hooks

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal started
        if not (
            started
            and answers_directly(scope, raw_path)
            and datasette_decides_nothing(datasette, wrapper_hook)
        ):
            await app(scope, receive, send)
            if scope["type"] == "http":
                started = True
            return
        # the scope Datasette's router hands the view: no actor, no URL parameters
        request = Request(dict(scope, actor=None, url_route={"kwargs": {}}), receive)
        send = vary_by_credentials(send)
        try:
            response = await view(datasette, request)
        except Exception as error:  # noqa: BLE001 - answered as Datasette's router answers it
            await answer_error(datasette, request, send, error)
            return
        await response.asgi_send(send)

    return route
