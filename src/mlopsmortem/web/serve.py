"""Launching Datasette on the knowledge base with our plugin, metadata and settings."""

from __future__ import annotations

import asyncio
import copy
import errno
import os
import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any

import yaml  # shipped with datasette
from datasette.app import Datasette

from mlopsmortem.db import open_existing_db
from mlopsmortem.errors import PortInUseError
from mlopsmortem.settings import Settings

# Bounds that keep one visitor from tying up the server.
DATASETTE_SETTINGS = {
    "sql_time_limit_ms": 3000,
    "max_returned_rows": 1000,
    "default_page_size": 50,
    "facet_time_limit_ms": 500,
    "allow_download": True,
}
PLUGIN_NAME = "mlopsmortem-search"
# The database entry of data/metadata.yml; renamed to the served file's stem.
METADATA_DATABASE = "mlopsmortem"
SEARCH_PATH = "/-/search"


def database_name(settings: Settings) -> str:
    """Datasette's name for the database: the file name without its extension."""
    return Path(settings.db_path).stem


def load_metadata(settings: Settings) -> dict[str, Any]:
    """data/metadata.yml, applied to the database being served, with the plugin configured.

    The `mlopsmortem` database entry (descriptions, facets, canned queries) is renamed to the
    served file's stem, and the plugin is told which database, model and query limit to use."""
    path = settings.data_dir / "metadata.yml"
    metadata: dict[str, Any] = {}
    if path.exists():
        metadata = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    metadata = copy.deepcopy(metadata)
    name = database_name(settings)
    databases = metadata.setdefault("databases", {}) or {}
    metadata["databases"] = databases
    if name != METADATA_DATABASE and METADATA_DATABASE in databases and name not in databases:
        databases[name] = databases.pop(METADATA_DATABASE)
    plugins = metadata.setdefault("plugins", {}) or {}
    metadata["plugins"] = plugins
    config = dict(plugins.get(PLUGIN_NAME) or {})
    config.update(
        database=name,
        model=settings.model_name,
        max_query_chars=settings.max_query_chars,
    )
    plugins[PLUGIN_NAME] = config
    return metadata


def build_datasette(settings: Settings) -> Datasette:
    """A Datasette instance over the database, as `serve` and the tests use it.

    Read-only towards visitors: Datasette 0.65 has no write API, the file is opened with
    read-only connections for queries, and no canned query writes. Raises `NotFoundError`
    when the file does not exist and `DatabaseError` when it is not a knowledge base of this
    version's schema (serving never creates or upgrades a database)."""
    open_existing_db(settings.db_path).close()
    plugins = settings.plugins_dir if settings.plugins_dir.is_dir() else None
    templates = plugins / "templates" if plugins and (plugins / "templates").is_dir() else None
    return Datasette(
        [str(settings.db_path)],
        metadata=load_metadata(settings),
        plugins_dir=str(plugins) if plugins else None,
        template_dir=str(templates) if templates else None,
        settings=DATASETTE_SETTINGS,
    )


def _run_startup(datasette: Datasette) -> None:
    """Run the plugins' startup hooks now (the plugin only starts its model warm-up thread),
    as `datasette serve` does, instead of on the first request."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(datasette.invoke_startup())
    finally:
        loop.close()


def graphical_display() -> bool:
    """Whether a browser opened from here would show a window: on Linux and the BSDs only with
    an X or Wayland display (without one, webbrowser falls back to console browsers such as
    lynx, which would take over the terminal the server logs to)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def bind_port(host: str, port: int, *, option: str = "--port") -> socket.socket:
    """A socket bound to host:port (not yet listening: uvicorn or the demo site listens on
    it), so that a taken port is an error before anything is announced or started.

    Raises `PortInUseError` naming the port and `option`, the command-line option that
    chooses another one."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise PortInUseError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    sock = socket.socket(family, kind, proto)
    # as uvicorn and http.server do: a port left in TIME_WAIT by a stopped server is free
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use (another mlopsmortem serve or demo?): "
                f"stop that program or choose another {option}"
            ) from err
        raise PortInUseError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    return sock


def open_when_ready(
    url: str, host: str, port: int, *, timeout: float = 60.0
) -> threading.Thread | None:
    """Open a browser on `url` from a background thread once the server accepts connections
    (opening it before uvicorn listens would show an error page); without a graphical display
    say where to point a browser instead."""
    if not graphical_display():
        print(f"no graphical display here: open {url} in a browser", flush=True)
        return None
    if _accepts(host, port):
        # something else listens there already: the server will fail to bind and say so, and
        # the browser would show that other program
        return None

    def wait_then_open() -> None:
        deadline = time.monotonic() + timeout
        while not _accepts(host, port):
            if time.monotonic() > deadline:
                print(f"the server did not answer within {timeout:.0f} s: open {url} later")
                return
            time.sleep(0.2)
        webbrowser.open(url)

    thread = threading.Thread(target=wait_then_open, name="mlopsmortem-open", daemon=True)
    thread.start()
    return thread


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    open_browser: bool,
    path: str = SEARCH_PATH,
    sock: socket.socket | None = None,
) -> None:
    """Run Datasette until interrupted; a crawl may update the database meanwhile (WAL).

    Checks, before announcing anything or starting the plugin, that the database exists (and
    is of this schema) and that the port is free (`sock`: one `bind_port` already reserved,
    which this call closes); either failure is a `MlopsmortemError`."""
    import uvicorn

    try:
        datasette = build_datasette(settings)
        if sock is None:
            sock = bind_port(host, port)
        _run_startup(datasette)
        url = f"http://{host}:{port}{path}"
        if not settings.quiet:
            print(f"serving {settings.db_path} at {url}  (Ctrl-C to stop)", flush=True)
        if open_browser:
            open_when_ready(url, host, port)
        # http="auto" picks httptools (a dependency) over h11; no access log: at log level
        # warning nothing would print it, yet its arguments were formatted for every request
        config = uvicorn.Config(
            datasette.app(),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # as uvicorn.run: Ctrl-C is the way to stop
            pass
    finally:
        if sock is not None:
            sock.close()
