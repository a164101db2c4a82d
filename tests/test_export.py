"""Exporting the knowledge base: round trips per format, determinism, --no-text, datasheet."""

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlopsmortem.cli import cli
from mlopsmortem.export.manifest import MANIFEST_NAME
from mlopsmortem.export.run import FORMATS, ExportError, export_dataset, run_export
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources
from tests.conftest import FIXTURES
from tests.support.export_kb import (
    DIM,
    EVIDENCE,
    LIST_SUMMARY,
    MODEL,
    PROSE,
    TEXT_COLUMNS,
    build_kb,
    vector,
)
from tests.test_export_cards import CARD_PROSE, add_cards


@pytest.fixture
def kb(db):
    kb = build_kb(db)
    add_cards(db, kb["ids"])  # incident cards too: every export below carries them
    return kb


def read_back(path: Path, fmt: str, columns: list[dict]) -> list[dict]:
    """A file as rows of plain Python values, with nothing but pyarrow, json and csv."""
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    types = {c["name"]: c["type"] for c in columns}
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for name, cell in raw.items():
                t = types[name]
                if cell == "":
                    row[name] = None
                elif t == "int64":
                    row[name] = int(cell)
                elif t == "float64":
                    row[name] = float(cell)
                elif t == "bool":
                    row[name] = cell == "true"
                elif t.startswith(("list", "fixed_size_list")):
                    row[name] = json.loads(cell)
                else:
                    row[name] = cell
            rows.append(row)
    return rows


def load_export(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    tables = {
        f["table"]: read_back(out / f["name"], manifest["format"], f["columns"])
        for f in manifest["files"]
    }
    return manifest, tables


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_matches_the_database(db, kb, settings, tmp_path, fmt):
    out = tmp_path / "out"
    result = export_dataset(db, settings, fmt, out, with_embeddings=True, no_text=False)
    manifest, tables = load_export(out)
    assert manifest["format"] == fmt
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f.name for f in result.files] + ["datasheet.md", "manifest.json"]
    )

    for table, sql in {
        "stories": "SELECT id FROM stories ORDER BY id",
        "provenance": "SELECT id FROM story_sources ORDER BY id",
        "pages": "SELECT story_id FROM pages ORDER BY story_id",
        "documents": "SELECT story_id FROM documents ORDER BY story_id",
        "passages": "SELECT id FROM passages ORDER BY id",
        "tags": "SELECT id FROM tags ORDER BY id",
    }.items():
        expected = [next(iter(r.values())) for r in db.query(sql)]
        key = "id" if "id" in tables[table][0] else "story_id"
        assert [r[key] for r in tables[table]] == expected, table
        assert {f["table"]: f["rows"] for f in manifest["files"]}[table] == len(expected)

    ids = kb["ids"]
    stories = {r["id"]: r for r in tables["stories"]}
    feast = stories[ids["feast"]]
    assert feast["components"] == ["Feast", "Redis"]
    assert feast["impacts"] == ["stale-data"]
    assert feast["sources"] == ["awful-mlops", "post-mortems"]
    assert (feast["link_status"], feast["word_count"], feast["year"]) == ("live", 18, 2022)
    assert feast["summary"] == LIST_SUMMARY
    assert stories[ids["gone"]]["link_status"] is None
    assert stories[ids["gone"]]["removed_at"] == "2024-05-02T03:00:00Z"
    assert stories[ids["guide"]]["components"] == []

    provenance = {r["id"]: r for r in tables["provenance"]}
    assert provenance[1]["list_involved"] == ["Feast", "redis"]
    assert provenance[1]["list_impact"] == ["stale recommendations for 3 days"]
    assert provenance[1]["list_title"].endswith("blog post 2022")
    assert provenance[2]["source"] == "post-mortems"

    pages = {r["story_id"]: r for r in tables["pages"]}
    assert "body" not in tables["pages"][0]
    assert pages[ids["etcd"]]["link_status"] == "archived"
    assert pages[ids["etcd"]]["archive_url"].startswith("https://web.archive.org/")
    assert pages[ids["guide"]]["final_url"] == "https://gamma.example/runbooks"
    assert pages[ids["guide"]]["truncated"] is True
    assert pages[ids["feast"]]["fetched_at"] == "2024-05-02T03:01:00Z"

    tags = {r["id"]: r for r in tables["tags"]}
    assert (tags[2]["method"], tags[2]["confidence"], tags[2]["evidence"]) == (
        "rule",
        0.9,
        EVIDENCE,
    )
    assert tags[3]["confidence"] == 0.6125
    assert tags[4]["free"] is True
    passages = {r["id"]: r for r in tables["passages"]}
    assert passages[2]["text"] == next(db.query("SELECT text FROM passages WHERE id = 2"))["text"]

    embeddings = tables[f"embeddings-{MODEL}"]
    assert [r["passage_id"] for r in embeddings] == [1, 2, 4, 5]  # 3 is stale
    for row in embeddings:
        assert (row["model"], row["dimension"]) == (MODEL, DIM)
        got = np.asarray(row["vector"], dtype=np.float32)
        assert np.array_equal(got, vector(row["passage_id"]))
    assert manifest["models"] == [
        {
            "name": MODEL,
            "dimension": DIM,
            "created_at": "2024-05-01T03:02:00Z",
            "vectors": 4,
            "vectors_left_out": 1,
        }
    ]


def test_parquet_types_are_plain_and_load_without_mlopsmortem(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    export_dataset(db, settings, "parquet", out, with_embeddings=True)
    schema = pq.read_schema(out / f"embeddings-{MODEL}.parquet")
    assert schema.field("vector").type == pa.list_(pa.float32(), DIM)
    assert pq.read_schema(out / "stories.parquet").field("components").type == pa.list_(pa.string())
    assert pq.read_schema(out / "pages.parquet").field("truncated").type == pa.bool_()
    # A fresh interpreter that cannot import mlopsmortem at all reads every file.
    script = (
        "import sys, glob, pyarrow.parquet as pq\n"
        "sys.modules['mlopsmortem'] = None\n"
        "for name in sorted(glob.glob(sys.argv[1] + '/*.parquet')):\n"
        "    print(name.rsplit('/', 1)[1], pq.read_table(name).num_rows)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, check=True
    )
    assert "stories.parquet 4" in result.stdout
    assert f"embeddings-{MODEL}.parquet 4" in result.stdout


def test_loads_with_datasets_when_installed(db, kb, settings, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    export_dataset(db, settings, "parquet", out, with_embeddings=True)
    for name, rows in (("stories", 4), (f"embeddings-{MODEL}", 4)):
        ds = datasets.load_dataset(
            "parquet",
            data_files={"train": str(out / f"{name}.parquet")},
            cache_dir=str(tmp_path / "cache"),
        )
        assert ds["train"].num_rows == rows


def test_pandas_reads_the_parquet_when_installed(db, kb, settings, tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "out"
    export_dataset(db, settings, "parquet", out)
    frame = pd.read_parquet(out / "stories.parquet")
    assert sorted(frame["id"]) == sorted(kb["ids"].values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_exports_are_byte_identical(db, kb, settings, tmp_path, fmt):
    first, second = tmp_path / "one", tmp_path / "two"
    export_dataset(db, settings, fmt, first, with_embeddings=True)
    # reading the database in between (as `status` would) must not change anything
    db.execute("SELECT COUNT(*) FROM stories").fetchone()
    export_dataset(db, settings, fmt, second, with_embeddings=True)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert len(names) == 12  # 6 tables, 3 of incident cards, embeddings, datasheet, manifest
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # exporting again into the same directory rewrites the same bytes
    before = {n: (first / n).read_bytes() for n in names}
    export_dataset(db, settings, fmt, first, with_embeddings=True)
    assert {n: (first / n).read_bytes() for n in names} == before


def test_no_export_timestamp_anywhere(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    export_dataset(db, settings, "jsonl", out, with_embeddings=True)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for path in out.iterdir():
        assert today not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_text_leaves_out_every_prose_column(db, kb, settings, tmp_path, fmt):
    out = tmp_path / "out"
    export_dataset(db, settings, fmt, out, with_embeddings=True, no_text=True)
    manifest, tables = load_export(out)
    assert manifest["options"] == {"no_text": True, "with_embeddings": True}
    for f in manifest["files"]:
        declared = {c["name"] for c in f["columns"]}
        assert not declared & TEXT_COLUMNS, f["name"]
        if fmt == "parquet":
            actual = set(pq.read_schema(out / f["name"]).names)
        elif fmt == "csv":
            actual = set(next(csv.reader(open(out / f["name"], encoding="utf-8"))))
        else:
            actual = set(tables[f["table"]][0])
        assert actual == declared, f["name"]
    for path in out.iterdir():
        data = path.read_bytes()
        for phrase in (*PROSE, *CARD_PROSE):
            assert phrase.encode() not in data, (path.name, phrase)
    # metadata, tags and embeddings are all still there
    assert {r["id"] for r in tables["passages"]} == {1, 2, 3, 4, 5}
    assert [r["tag"] for r in tables["tags"]] == [
        "Feast",
        "Redis",
        "stale-data",
        "control plane down",
    ]
    assert len(tables[f"embeddings-{MODEL}"]) == 4
    assert tables["provenance"][0]["list_involved"] == ["Feast", "redis"]
    assert "metadata-only export" in (out / "datasheet.md").read_text()


def test_datasheet_and_manifest_describe_the_data(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    export_dataset(db, settings, "parquet", out, with_embeddings=True)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    counts = manifest["counts"]
    assert counts["stories"] == 4
    assert counts["removed_from_lists"] == 1
    assert counts["by_category"] == {"failure story": 3, "resource": 1}
    assert counts["by_link_status"] == {
        "archived": 1,
        "live": 1,
        "not_fetched": 1,
        "redirected": 1,
    }
    assert counts["by_component"] == {"Feast": 1, "Kubernetes": 1, "Redis": 1, "etcd": 1}
    assert counts["by_impact"] == {"outage": 1, "stale-data": 1}
    assert counts["tags_by_method"]["component/list"] == 1
    sources = manifest["collection"]["sources"]
    assert [s["name"] for s in sources] == ["awful-mlops", "post-mortems"]
    assert sources[0]["etag"] == 'W/"5f1c0a"'
    assert sources[0]["content_hash"] == "ab" * 32
    assert sources[0]["last_read"] == "2024-05-02T03:00:04Z"
    assert manifest["collection"]["crawl_dates"] == ["2024-05-01", "2024-05-02"]
    assert manifest["collection"]["runs_by_command"]["crawl"]["runs"] == 2
    assert manifest["taxonomy"] == {"version": "0a1b2c3d4e5f", "versions_in_tags": ["0a1b2c3d4e5f"]}
    assert "belong to their authors" in manifest["licence"]
    for f in manifest["files"]:
        assert f["columns"] and all(c["description"] for c in f["columns"])
        assert set(pq.read_schema(out / f["name"]).names) == {c["name"] for c in f["columns"]}
    stories = next(f for f in manifest["files"] if f["table"] == "stories")
    assert {"name": "components", "type": "list<string>"}.items() <= {
        **next(c for c in stories["columns"] if c["name"] == "components")
    }.items()

    sheet = (out / "datasheet.md").read_text()
    for expected in (
        "## How it was collected",
        "| awful-mlops | https://raw.githubusercontent.com/x/awful-mlops/main/README.md | afs |",
        'W/"5f1c0a"',
        "Crawl dates (UTC): 2024-05-01, 2024-05-02",
        "| failure story | 3 |",
        "| not_fetched | 1 |",
        "| Feast | 1 |",
        f"embedding model `{MODEL}`: {DIM} dimensions, 4 current vectors",
        "(stale vectors left out: 1)",
        "taxonomy version: 0a1b2c3d4e5f",
        "### `stories.parquet`",
        "| `vector` | `fixed_size_list<float32>[8]` |",
        "belong to their authors",
        'load_dataset("parquet"',
    ):
        assert expected in sheet, expected
    for f in manifest["files"]:
        assert f["sha256"] in sheet


def test_reexport_drops_stale_files_and_keeps_foreign_ones(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("my dataset card")
    export_dataset(db, settings, "parquet", out, with_embeddings=True)
    assert (out / f"embeddings-{MODEL}.parquet").exists()
    export_dataset(db, settings, "jsonl", out)
    names = sorted(p.name for p in out.iterdir())
    assert not any(n.endswith(".parquet") for n in names)
    assert "README.md" in names and "stories.jsonl" in names
    assert not any(n.startswith(".") for n in names)  # no temporary files left


def test_empty_database_exports_empty_files(db, settings, tmp_path):
    out = tmp_path / "out"
    manifest = export_dataset(db, settings, "parquet", out, with_embeddings=True)
    assert [f.rows for f in manifest.files] == [0] * 9
    assert pq.read_table(out / "stories.parquet").num_rows == 0
    assert "none yet" in (out / "datasheet.md").read_text()


def test_bad_format_and_bad_directory(db, settings, tmp_path):
    with pytest.raises(ExportError, match="unknown export format"):
        export_dataset(db, settings, "xlsx", tmp_path / "out")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="not a directory"):
        export_dataset(db, settings, "csv", tmp_path / "file")


def test_run_export_needs_an_existing_database(settings, tmp_path):
    from mlopsmortem.errors import NotFoundError

    with pytest.raises(NotFoundError, match="does not exist"):
        run_export(settings, "csv", tmp_path / "out")
    assert not settings.db_path.exists()


def test_cli_export(db, kb, settings, tmp_path):
    out = tmp_path / "out"
    args = ["export", "--db", str(settings.db_path), "--format", "csv", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--with-embeddings", "--no-text"])
    assert result.exit_code == 0, result.output
    assert "stories.csv: 4 rows" in result.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["options"] == {"no_text": True, "with_embeddings": True}
    assert CliRunner().invoke(cli, [*args, "--quiet"]).output == ""
    bad = CliRunner().invoke(cli, ["export", "--db", str(settings.db_path), "--format", "xml"])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(
        cli, ["export", "--db", str(tmp_path / "nope.db"), "--out", str(out)]
    )
    assert missing.exit_code == 1
    assert "does not exist" in missing.output


def test_export_of_a_real_crawl_with_real_vectors(db, settings, httpserver, tmp_path):
    from tests.test_history import Site, crawl

    site = Site(httpserver, tmp_path)
    site.write_list(["/stable", "/edited"])
    crawl(settings, site)
    model = next(db.query("SELECT name, dimension FROM embedding_models"))
    assert db["embeddings"].count > 0
    out = tmp_path / "out"
    export_dataset(db, settings, "parquet", out, with_embeddings=True)

    table = pq.read_table(out / f"embeddings-{model['name']}.parquet")
    assert table.schema.field("vector").type == pa.list_(pa.float32(), model["dimension"])
    stored = {
        r["passage_id"]: np.frombuffer(r["vector"], dtype="<f4")
        for r in db.query("SELECT passage_id, vector FROM embeddings")
    }
    rows = table.to_pylist()
    assert sorted(r["passage_id"] for r in rows) == sorted(stored)
    for row in rows:
        assert np.array_equal(
            np.asarray(row["vector"], dtype=np.float32), stored[row["passage_id"]]
        )
    passages = pq.read_table(out / "passages.parquet").to_pylist()
    assert [p["text"] for p in passages] == [
        r["text"] for r in db.query("SELECT text FROM passages ORDER BY id")
    ]
    stories = pq.read_table(out / "stories.parquet").to_pylist()
    assert {s["link_status"] for s in stories} == {"live"}
    assert all(s["word_count"] for s in stories)

    again = tmp_path / "again"
    export_dataset(db, settings, "parquet", again, with_embeddings=True)
    for path in out.iterdir():
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


def test_no_text_keeps_danluu_titles_without_the_summary_they_quote(db, settings, tmp_path):
    # danluu titles are "<link text>: <first sentence of the summary>" (lists.formats): with
    # the summary left out, the title keeps the link text alone
    spec = SourceSpec(name="danluu", location=str(FIXTURES / "danluu.md"), format="danluu")
    report = ingest_sources(db, [spec], settings)
    assert not report.failed
    sentence = "A bad flag in 2018 took down every region"
    assert db.execute(
        "SELECT count(*) FROM stories WHERE title LIKE ?", [f"%{sentence}%"]
    ).fetchone()[0]
    out = tmp_path / "out"
    export_dataset(db, settings, "jsonl", out, no_text=True)
    _, tables = load_export(out)
    acme = next(r for r in tables["stories"] if r["publisher"] == "Acme")
    assert acme["title"] == "Acme"
    assert next(r for r in tables["provenance"] if r["list_title"] == "Acme")["title"] == "Acme"
    for path in out.iterdir():
        assert sentence not in path.read_text(encoding="utf-8"), path.name
    # titles that do not quote a summary stay, and a full export keeps the list's own title
    resource = next(r for r in tables["stories"] if r["category"] == "resource")
    assert resource["title"] == "How things fail"
    export_dataset(db, settings, "jsonl", tmp_path / "full", no_text=False)
    _, full = load_export(tmp_path / "full")
    assert next(r for r in full["stories"] if r["publisher"] == "Acme")["title"] == (
        f"Acme: {sentence}"
    )
