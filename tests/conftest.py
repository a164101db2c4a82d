from __future__ import annotations

from pathlib import Path

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Real lists and postmortems beside the repository; tests that use them skip without them.
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "kb.db", quiet=True)


@pytest.fixture
def db(settings: Settings):
    database = open_db(settings.db_path)
    yield database
    database.close()
