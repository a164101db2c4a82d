"""The default sources of data/sources.toml: the three public failure-story lists and the MLOps
resource list this project was started from, which has no public upstream and is bundled in
data/lists/ with its origin stated."""

from __future__ import annotations

import tomllib
from pathlib import Path

from mlopsmortem.db import open_db
from mlopsmortem.lists.ingest import ingest_sources, load_source_specs
from mlopsmortem.settings import Settings

from .conftest import REPO_ROOT

BUNDLED = REPO_ROOT / "data" / "lists" / "mlops-resources.md"
SHARED_COPY = REPO_ROOT.parent / "shared" / "corpus" / "lists" / "mlops-resources.md"


def test_the_resource_list_is_a_default_source_read_from_the_bundled_file() -> None:
    specs = {s.name: s for s in load_source_specs(Settings().sources_file)}
    assert list(specs)[:3] == ["awful-mlops", "k8s.af", "danluu-post-mortems"]
    spec = specs["mlops-resources"]
    assert spec.format == "resources" and not spec.is_url
    assert Path(spec.location) == BUNDLED.resolve()


def test_the_bundled_list_states_its_origin_and_keeps_the_list_verbatim() -> None:
    text = BUNDLED.read_text(encoding="utf-8")
    header, _, body = text.partition("-->\n\n")
    assert header.startswith("<!--") and "no public upstream" in header
    assert "mlops-resources.md" in header and "seed list" in header
    if SHARED_COPY.exists():  # the project's shared corpus, when checked out beside it
        assert body == SHARED_COPY.read_text(encoding="utf-8")


def test_the_bundled_list_ingests_offline_as_resources(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "kb.db", quiet=True)
    (spec,) = [s for s in load_source_specs(settings.sources_file) if s.name == "mlops-resources"]
    db = open_db(settings.db_path)
    try:
        report = ingest_sources(db, [spec], settings)
        (source,) = report.sources
        assert source.error is None and source.new >= 25, source
        row = db.execute("SELECT name, format FROM sources").fetchone()
        assert row == ("mlops-resources", "resources")
        urls = {r[0] for r in db.execute("SELECT url FROM stories")}
        assert "https://martinfowler.com/articles/cd4ml.html" in urls
    finally:
        db.close()


def test_the_bundled_list_ships_in_the_wheel() -> None:
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "lists/*.md" in setuptools["package-data"]["mlopsmortem.data"]
    assert "mlopsmortem.data.lists" in setuptools["packages"]
