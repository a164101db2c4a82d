from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import embed_passages, load_model
from mlopsmortem.passages.sync import sync_passages
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import CALIBRATION_FILE
from tests.support.knowledge_base import build_kb, kb_settings

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


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A private copy of the data files tagging reads, safe to edit."""
    target = tmp_path / "data"
    target.mkdir()
    for name in ("taxonomy.toml", CALIBRATION_FILE):
        shutil.copy(REPO_ROOT / "data" / name, target / name)
    return target


@pytest.fixture
def tag_settings(tmp_path: Path, data_dir: Path) -> Settings:
    return Settings(db_path=tmp_path / "kb.db", quiet=True, data_dir=data_dir)


@pytest.fixture(scope="session")
def model():
    return load_model()


# The search tests' invented knowledge base (tests/support/knowledge_base.py), embedded with
# the real model once per session.
@pytest.fixture(scope="session")
def kb(tmp_path_factory) -> tuple[Path, Settings]:
    path = tmp_path_factory.mktemp("search") / "kb.db"
    db = build_kb(path)
    settings = kb_settings(path)
    sync_passages(db, settings=settings)
    embed_passages(db, settings, progress=False)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path, settings


@pytest.fixture(scope="session")
def kbdb(kb):
    db = open_db(kb[0])
    yield db
    db.close()


@pytest.fixture
def kb_copy(kb, tmp_path: Path) -> tuple[Path, Settings]:
    """A private copy of the knowledge base for tests that write."""
    target = tmp_path / "copy.db"
    source = sqlite3.connect(kb[0])
    dest = sqlite3.connect(target)
    source.backup(dest)
    source.close()
    dest.close()
    return target, kb[1].with_(db_path=target)
