"""Search: keyword (FTS5 bm25), semantic (exact cosine) and hybrid (rank fusion) over passages,
results as stories with the passage that matched; and similar stories.

The package's interface is `search`, `similar` and the types below; its stages are the modules
`filters`, `keyword`, `vectors`, `fusion` and `snippets`, run in order by `run`.
"""

from mlopsmortem.search.run import EMPTY_DB_MESSAGE, search, similar
from mlopsmortem.search.types import DEFAULT_TUNING, MODES, Mode, StoryHit, Tuning

__all__ = [
    "DEFAULT_TUNING",
    "EMPTY_DB_MESSAGE",
    "MODES",
    "Mode",
    "StoryHit",
    "Tuning",
    "search",
    "similar",
]
