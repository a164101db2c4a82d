"""The ONNX query encoder: same vectors as sentence-transformers, rebuilt when the model changes,
and searching (CLI and served) in a process where torch cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlopsmortem.db import open_db
from mlopsmortem.extras import CRAWL_MODULES
from mlopsmortem.passages.encoder import query_encoder, stored_encoder
from mlopsmortem.passages.encoder_export import ensure_query_encoder
from mlopsmortem.search import search, similar, vectors
from mlopsmortem.settings import DEFAULT_MODEL

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_QUERIES = REPO_ROOT / "data" / "demo" / "queries.tsv"
QUERIES = ("lost logs fluent-bit", "the disk filled up on the build machines", "x509 expired")

# A serving install: neither torch nor any package of the crawl extra can be imported.
SERVING_ONLY = "import sys\n" + "".join(
    f"sys.modules[{name!r}] = None\n" for name in ("torch", "transformers", *CRAWL_MODULES)
)


def demo_queries() -> list[str]:
    lines = DEMO_QUERIES.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines if line.strip()]


def run_python(code: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_55_demo_queries_embed_alike_both_ways(kb) -> None:
    path, _ = kb
    onnx = query_encoder(str(path), DEFAULT_MODEL, "onnx")
    torch = query_encoder(str(path), DEFAULT_MODEL, "torch")
    assert (onnx.kind, torch.kind) == ("onnx", "torch")
    queries = demo_queries()
    assert len(queries) == 55
    cosines = [float(np.dot(onnx.embed(q), torch.embed(q))) for q in queries]
    assert min(cosines) >= 0.9999, min(cosines)
    assert all(abs(float(np.linalg.norm(onnx.embed(q))) - 1) < 1e-5 for q in queries[:5])


def test_the_encoder_is_rebuilt_when_the_model_files_change(kb_copy) -> None:
    path, _ = kb_copy
    db = open_db(path)
    assert ensure_query_encoder(db, DEFAULT_MODEL).action == "current"
    with db.conn:
        db.execute("UPDATE query_encoders SET model_hash = 'older weights'")
    status = ensure_query_encoder(db, DEFAULT_MODEL)
    assert status.action == "exported" and status.onnx_bytes > 1_000_000
    stored = stored_encoder(db.conn, DEFAULT_MODEL)
    assert stored is not None and stored.model_hash == status.model_hash
    db.close()


def test_a_database_without_an_export_falls_back_and_says_so_once(kb_copy, caplog) -> None:
    path, _ = kb_copy
    db = open_db(path)
    with db.conn:
        db.execute("DELETE FROM query_encoders")
    db.close()
    with caplog.at_level("WARNING", logger="mlopsmortem.passages.encoder"):
        first = query_encoder(str(path), DEFAULT_MODEL)
        query_encoder(str(path), DEFAULT_MODEL)
    assert first.kind == "torch"
    notes = [r for r in caplog.records if "no ONNX query encoder" in r.getMessage()]
    assert len(notes) == 1
    with pytest.raises(LookupError):
        query_encoder(str(path), DEFAULT_MODEL, "onnx")


def test_a_serving_install_searches_serves_and_exports_like_the_full_one(kb, tmp_path) -> None:
    path, settings = kb
    db = open_db(path)
    torch_settings = settings.with_(query_encoder="torch")
    with vectors._query_lock:  # vectors other tests embedded with the export: not the baseline
        vectors._query_vectors.clear()
    expected = {
        q: [hit.id for hit in search(db, q, settings=torch_settings, limit=10)] for q in QUERIES
    }
    with vectors._query_lock:
        vectors._query_vectors.clear()
    assert all(len(ids) >= 3 for ids in expected.values())
    db.close()
    export_dir = tmp_path / "export"
    story = expected[QUERIES[0]][0]
    code = SERVING_ONLY + (
        "import asyncio, json, contextlib, io\n"
        "from mlopsmortem.cli import cli\n"
        f"path, queries = {str(path)!r}, {list(QUERIES)!r}\n"
        "out = {'cli': {}, 'served': {}}\n"
        "for q in queries:\n"
        "    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        try:\n"
        "            cli(['search', q, '--db', path, '--json'], standalone_mode=False)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    out['cli'][q] = [hit['id'] for hit in json.loads(buffer.getvalue())]\n"
        "from pathlib import Path\n"
        "from mlopsmortem.settings import Settings\n"
        "from mlopsmortem.web.serve import build_datasette\n"
        "ds = build_datasette(Settings(db_path=Path(path), quiet=True))\n"
        "async def served():\n"
        "    for q in queries:\n"
        "        r = await ds.client.get('/-/search.json', params={'q': q, 'n': 10})\n"
        "        assert r.status_code == 200, r.text\n"
        "        out['served'][q] = [hit['id'] for hit in r.json()['results']]\n"
        "asyncio.run(served())\n"
        "def run(args):\n"
        "    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        cli(args, standalone_mode=False)\n"
        "    return buffer.getvalue()\n"
        f"similar = json.loads(run(['similar', {story!r}, '--db', path, '--json']))\n"
        "out['similar'] = [hit['id'] for hit in similar]\n"
        f"run(['export', '--db', path, '--format', 'parquet', '--out', {str(export_dir)!r}])\n"
        "try:\n"
        "    cli(['crawl', '--db', path], standalone_mode=False)\n"
        "except Exception as err:\n"
        "    out['crawl'] = str(err)\n"
        "loaded = [n for n, m in sys.modules.items() if m is not None]\n"
        "assert 'torch' not in loaded and 'trafilatura' not in loaded\n"
        "print(json.dumps(out))\n"
    )
    out = json.loads(run_python(code).strip().splitlines()[-1])
    db = open_db(path)
    assert out["similar"] == [hit.id for hit in similar(db, story, settings=settings, limit=10)]
    db.close()
    assert (export_dir / "stories.parquet").stat().st_size > 0
    assert out["crawl"].startswith("`mlopsmortem crawl` needs the crawl extra (protego,")
    assert out["crawl"].endswith("pip install 'mlopsmortem[crawl]'")
    for q in QUERIES:
        assert out["cli"][q] == expected[q], q
        assert out["served"][q] == expected[q][:10], q


def test_start_up_imports_nothing_heavy(kb) -> None:
    path, _ = kb
    code = (
        "import contextlib, io, sys\n"
        "from mlopsmortem.cli import cli\n"
        f"path = {str(path)!r}\n"
        "for args in (['--help'], ['search', 'disk full', '--mode', 'keyword', '--db', path],\n"
        "             ['status', '--db', path], ['changes', '--db', path]):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            cli(args, standalone_mode=False)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'onnxruntime', 'datasette')\n"
        "print(sorted(n for n in heavy if n in sys.modules))\n"
    )
    assert run_python(code).strip().splitlines()[-1] == "[]"
