"""Launching Datasette on the knowledge base with our plugin, metadata and settings."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import yaml  # shipped with datasette
from datasette.app import Datasette

from mlopsmortem.errors import NotFoundError
from mlopsmortem.settings import Settings

# Bounds that keep one visitor from tying up the server.
DATASETTE_SETTINGS = {
    "sql_time_limit_ms": 3000,
    "max_returned_rows": 1000,
    "default_page_size": 50,
    "facet_time_limit_ms": 500,
    "allow_download": True,
}


def load_metadata(settings: Settings) -> dict:
    path = settings.data_dir / "metadata.yml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def build_datasette(settings: Settings) -> Datasette:
    """A Datasette instance over the database, as `serve` and the tests use it."""
    if not Path(settings.db_path).exists():
        raise NotFoundError(f"{settings.db_path} does not exist: run `mlopsmortem crawl` first")
    plugins = settings.plugins_dir if settings.plugins_dir.is_dir() else None
    templates = plugins / "templates" if plugins and (plugins / "templates").is_dir() else None
    return Datasette(
        [str(settings.db_path)],
        metadata=load_metadata(settings),
        plugins_dir=str(plugins) if plugins else None,
        template_dir=str(templates) if templates else None,
        settings=DATASETTE_SETTINGS,
    )


def serve(settings: Settings, *, host: str, port: int, open_browser: bool, path: str = "/") -> None:
    """Run Datasette until interrupted; a crawl may update the database meanwhile (WAL)."""
    import uvicorn

    datasette = build_datasette(settings)
    url = f"http://{host}:{port}{path}"
    if not settings.quiet:
        print(f"serving {settings.db_path} at {url}  (Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(datasette.app(), host=host, port=port, log_level="warning")
