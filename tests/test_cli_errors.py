"""The CLI's failures are one line naming the cause (exit code 1), reading commands never create
or change a database, and search output says when results lack the query's words (issue 17,
items 5 to 8). Real SQLite files in tmp_path, real sockets for busy ports."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mlopsmortem.cli import cli
from mlopsmortem.db import MIGRATIONS_TABLE, open_db

READ_ONLY = {
    "search": ["search", "dns"],
    "similar": ["similar", "0123456789abcdef"],
    "status": ["status"],
    "changes": ["changes"],
    "export": ["export", "--out", "OUT"],
    "serve": ["serve"],
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_error_line(result: Result) -> str:
    """The single `Error: ...` line of a failed command, checking there is nothing else."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def files_in(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in directory.iterdir()
        if p.is_file()
    }


# --------------------------------------------------------------------------- item 5


def test_a_database_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "kb.db"
    line = one_error_line(invoke("search", "dns", "--db", str(path)))
    assert line == f"Error: {path} does not exist: run `mlopsmortem crawl` first"
    line = one_error_line(invoke("crawl", "--db", str(path)))
    assert line == f"Error: cannot open {path}: directory {path.parent} does not exist"
    assert not path.parent.exists()


def test_serve_on_a_busy_port_says_so_before_announcing(tmp_path: Path, busy_port: int) -> None:
    path = tmp_path / "kb.db"
    open_db(path).close()
    result = invoke("serve", "--db", str(path), "--port", str(busy_port))
    line = one_error_line(result)
    assert line.startswith(f"Error: port {busy_port} on 127.0.0.1 is already in use")
    assert "--port" in line and "serving" not in result.output


def test_demo_with_its_site_port_taken_is_one_line(tmp_path: Path, busy_port: int) -> None:
    path = tmp_path / "demo.db"
    result = invoke("demo", "--db", str(path), "--site-port", str(busy_port), "--no-serve")
    line = one_error_line(result)
    assert line.startswith(f"Error: the demo site's port {busy_port} on 127.0.0.1 is already")
    assert "--site-port" in line


def test_demo_with_its_server_port_taken_fails_before_crawling(
    tmp_path: Path, busy_port: int
) -> None:
    """A second `make demo` while one serves: the Datasette port is checked first, in a moment,
    not after a whole crawl."""
    path = tmp_path / "demo.db"
    started = time.monotonic()
    result = invoke("demo", "--db", str(path), "--site-port", "0", "--port", str(busy_port))
    line = one_error_line(result)
    assert line.startswith(f"Error: port {busy_port} on 127.0.0.1 is already in use")
    assert time.monotonic() - started < 10
    assert not path.exists()


def test_python_dash_m_prints_no_traceback_on_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    path = tmp_path / "kb.db"
    open_db(path).close()
    done = subprocess.run(
        [sys.executable, "-m", "mlopsmortem", "serve", "--db", str(path), "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"Error: port {busy_port} on 127.0.0.1 is already in use")
    assert done.stderr.count("\n") == 1


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_read_only_commands_never_create_a_database(tmp_path: Path, command: str) -> None:
    path = tmp_path / "missing.db"
    args = [a.replace("OUT", str(tmp_path / "out")) for a in READ_ONLY[command]]
    line = one_error_line(invoke(*args, "--db", str(path)))
    assert line == f"Error: {path} does not exist: run `mlopsmortem crawl` first"
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["search", "similar", "status", "changes", "export"])
def test_read_only_commands_do_not_change_an_existing_database(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "kb" / "kb.db"
    path.parent.mkdir()
    db = open_db(path)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = files_in(path.parent)
    args = [a.replace("OUT", str(tmp_path / "out")) for a in READ_ONLY[command]]
    invoke(*args, "--db", str(path))  # an empty knowledge base: some succeed, some explain
    after = files_in(path.parent)
    assert after[path.name] == before[path.name]
    assert set(after) - set(before) <= {f"{path.name}-wal", f"{path.name}-shm"}
    assert not after.get(f"{path.name}-wal") or Path(f"{path}-wal").stat().st_size == 0


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_a_database_needing_migrations_is_not_upgraded_by_reading(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "old.db"
    db = open_db(path)
    last = max(row["number"] for row in db[MIGRATIONS_TABLE].rows)
    db.execute(f"DELETE FROM {MIGRATIONS_TABLE} WHERE number = ?", [last])
    db.conn.commit()
    db.close()
    args = [a.replace("OUT", str(tmp_path / "out")) for a in READ_ONLY[command]]
    line = one_error_line(invoke(*args, "--db", str(path)))
    assert line.startswith(f"Error: {path} needs 1 schema upgrade(s) and this command only reads")
    assert "mlopsmortem crawl" in line
    db = open_db(path, migrate=False)
    assert last not in {row["number"] for row in db[MIGRATIONS_TABLE].rows}
    db.close()


def test_a_file_that_is_not_a_knowledge_base_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the pages you are looking for\n" * 50)
    line = one_error_line(invoke("status", "--db", str(path)))
    assert line == f"Error: cannot open {path}: not an SQLite database"
    empty = tmp_path / "empty.db"
    empty.touch()
    line = one_error_line(invoke("search", "dns", "--db", str(empty)))
    assert (
        line
        == f"Error: {empty} is not an mlopsmortem knowledge base: run `mlopsmortem crawl` first"
    )
    assert empty.stat().st_size == 0


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize("year", ["99", "0", "20201", "1899"])
def test_since_must_be_a_year_in_a_sane_range(kb, year: str) -> None:
    result = invoke("search", "dns", "--since", year, "--db", str(kb[0]))
    assert result.exit_code == 2
    last = datetime.now(UTC).year + 1
    assert f"{year} is not a year from 1900 to {last}" in result.output


def test_since_accepts_a_year(kb) -> None:
    result = invoke("search", "dns", "--since", "2019", "--mode", "keyword", "--db", str(kb[0]))
    assert result.exit_code == 0, result.output


def test_gitignore_covers_the_files_beside_a_database(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    names = ["demo.db", "demo.db.lock", "kb.db-wal", "demo.db.demo-list.md"]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *names], cwd=repo, capture_output=True, text=True
    )
    if done.returncode == 128:
        pytest.skip("not a git checkout")
    assert done.stdout.split() == names


def test_piped_search_output_is_not_wrapped(kb) -> None:
    args = ["search", "kubernetes certificate", "--mode", "keyword", "--db", str(kb[0])]
    hits = json.loads(invoke(*args, "--json").output)
    assert hits
    lines = invoke(*args).output.splitlines()
    assert max(len(line) for line in lines) > 80  # would have been wrapped at 80 columns
    for hit in hits:
        assert f"   {hit['url']}   id {hit['id']}" in lines
        assert any(line.startswith(f"{hit['rank']}. ") and hit["title"] in line for line in lines)


# --------------------------------------------------------------------------- item 8


def test_search_says_when_no_result_contains_the_words(kb) -> None:
    base = ["search", "zqxjv wqmpt", "--db", str(kb[0]), "-n", "3"]
    hybrid = invoke(*base)
    assert hybrid.exit_code == 0, hybrid.output
    lines = hybrid.output.splitlines()
    assert lines[0] == "no story contains your words; these are the nearest by meaning"
    assert lines[2].startswith("1. ") and "meaning only" in lines[2]
    keyword = invoke(*base, "--mode", "keyword")
    assert keyword.output.splitlines()[0] == "no story contains your words"


def test_search_with_matching_words_has_no_such_line(kb) -> None:
    result = invoke("search", "certificate", "--db", str(kb[0]), "-n", "3", "--mode", "keyword")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1. ")
    assert "contain your words" not in result.output


def test_status_names_what_its_document_count_counts(tmp_path: Path) -> None:
    """`status` counts documents with text; the export's documents file has every row (one per
    fetched page, with the reason when there is no text): the label says which."""
    path = tmp_path / "kb.db"
    open_db(path).close()
    result = invoke("status", "--db", str(path))
    assert result.exit_code == 0, result.output
    assert "documents with text 0, passages 0" in result.output
