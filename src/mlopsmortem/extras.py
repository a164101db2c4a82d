"""Which install extra a command needs, checked before anything heavy is imported.

`pip install mlopsmortem` serves, searches and exports a built knowledge base; crawling,
extracting, embedding and tagging need `mlopsmortem[crawl]`. A command of the second kind run
without it stops with one line that names the missing packages and the install command,
instead of an ImportError from deep inside the pipeline.
"""

from __future__ import annotations

import importlib.util
import sys

from mlopsmortem.errors import MissingExtraError

# The import names of the crawl extra's packages (pyproject.toml's optional-dependencies).
CRAWL_MODULES = (
    "protego",
    "trafilatura",
    "lxml",
    "pypdf",
    "charset_normalizer",
    "sentence_transformers",
)


def _importable(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def require_crawl_extra(command: str) -> None:
    """Raise MissingExtraError unless every package of the crawl extra can be imported."""
    missing = [name for name in CRAWL_MODULES if not _importable(name)]
    if missing:
        raise MissingExtraError(
            f"`mlopsmortem {command}` needs the crawl extra ({', '.join(missing)} not "
            "installed): pip install 'mlopsmortem[crawl]'"
        )
