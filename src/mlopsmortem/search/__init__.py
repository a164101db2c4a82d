"""Search: keyword (FTS5 bm25), semantic (exact cosine) and hybrid (rank fusion) over passages,
results as stories with the passage that matched; similar stories; and browsing by filters alone.

The package's interface is `search`, `similar`, `browse` (mlopsmortem.search.browse: the stories
passing filters, newest first, without a query) and the types below; its stages are the modules
`filters`, `keyword`, `vectors`, `fusion` and `snippets`, run in order by `run`; `cards` reads
the incident-card fields each hit carries.
"""

from mlopsmortem.search.browse import browse
from mlopsmortem.search.run import EMPTY_DB_MESSAGE, search, similar
from mlopsmortem.search.types import DEFAULT_TUNING, MODES, Mode, StoryHit, Tuning

__all__ = [
    "DEFAULT_TUNING",
    "EMPTY_DB_MESSAGE",
    "MODES",
    "Mode",
    "StoryHit",
    "Tuning",
    "browse",
    "search",
    "similar",
]
