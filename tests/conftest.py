from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlopsmortem.db import open_db
from mlopsmortem.passages.embed import load_model
from mlopsmortem.settings import Settings
from mlopsmortem.tagging.calibration import CALIBRATION_FILE

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
