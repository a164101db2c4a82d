"""`mlopsmortem show` and `mlopsmortem like` (mlopsmortem/cli_incidents.py) on the search tests'
knowledge base, copied once per module with the cards of tests/support/incident_cards.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlopsmortem.cli import cli
from mlopsmortem.db import open_db
from mlopsmortem.search.like import MAX_LIKE_CHARS
from tests.support.incident_cards import with_cards
from tests.test_query_encoder import SERVING_ONLY, run_python

INCIDENT = (
    "Elasticsearch was down for an hour. Our Fluent Bit daemonset paused its tail input when "
    "the memory buffer filled up, and hours of application logs were missing afterwards."
)


@pytest.fixture(scope="module")
def cards_db(kb, tmp_path_factory) -> Path:
    path = with_cards(kb[0], tmp_path_factory.mktemp("cli-cards") / "kb.db")
    db = open_db(path)
    with db.conn:  # a second method for one tag (the plugin's knowledge base has it already)
        db["tags"].insert(
            {
                "story_id": "fluentbit",
                "kind": "component",
                "tag": "logging",
                "method": "rule",
                "confidence": 0.9,
                "evidence": "3 mentions; first: …our Fluent Bit daemonset",
            }
        )
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- show


def test_show_prints_the_story_card_tags_and_lists(cards_db) -> None:
    result = run("show", "fluentbit", "--db", str(cards_db))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        "How Fluent Bit silently dropped our logs",
        "https://example.org/fluentbit",
        "id fluentbit · Acme Cloud · 2022 · link live",
    ]
    out = result.output
    assert "Summary: Paused tail input plus log rotation lost hours of application logs." in out
    assert (
        "Triggers: dependency failure (cloud, third party, upstream), "
        "resource exhaustion (disk, memory, quota, IPs)" in out
    )
    assert "Detected by: a customer report" in out
    assert "Duration: 1 h 48 min (1–6 h)" in out
    assert "  - Keep rotated files longer." in out and "  14:09  tail input paused" in out
    tags = [line.split() for line in out[out.index("Tags:") :].splitlines()[1:4]]
    assert ["component", "logging", "list,", "rule"] in tags  # one line per tag, its methods
    assert "Listed in:\n  awesome-mlops-failures" in out


def test_show_json_has_the_card_tags_and_sources(cards_db) -> None:
    result = run("show", "fluentbit", "--db", str(cards_db), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["id"] == "fluentbit" and data["link_status"] == "live"
    assert data["card"]["triggers"] == ["dependency-failure", "resource-exhaustion"]
    assert data["card"]["duration_minutes"] == 108 and data["card"]["duration_band"] == "1-6h"
    assert len(data["card"]["timeline"]) == 3
    logging = next(t for t in data["tags"] if (t["kind"], t["tag"]) == ("component", "logging"))
    assert [m["method"] for m in logging["methods"]] == ["list", "rule"]
    assert data["sources"][0]["source"] == "awesome-mlops-failures"


def test_show_a_story_without_a_card(cards_db) -> None:
    result = run("show", "conntrack", "--db", str(cards_db))
    assert result.exit_code == 0 and "No incident card yet." in result.output
    assert "Summary:" not in result.output
    data = json.loads(run("show", "conntrack", "--db", str(cards_db), "--json").output)
    assert data["card"] is None


def test_show_an_unknown_story_is_one_line_and_exit_1(cards_db) -> None:
    result = run("show", "nope", "--db", str(cards_db))
    assert result.exit_code == 1
    assert result.output == "Error: no story with id 'nope'\n"


# --------------------------------------------------------------------------- like


def test_like_a_file_prints_stories_what_they_share_and_resolutions(cards_db, tmp_path) -> None:
    source = tmp_path / "draft.md"
    source.write_text(INCIDENT, encoding="utf-8")
    result = run("like", str(source), "--db", str(cards_db), "-n", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(" 1. How Fluent Bit silently dropped our logs  (0.")
    assert lines[1].startswith("    https://example.org/fluentbit  Acme Cloud · 2022 · live")
    assert lines[2].startswith("    id fluentbit: “")
    assert sum(line[:4].strip().endswith(".") for line in lines) >= 5
    assert "Components among them: " in result.output and "logging (" in result.output
    assert "How they were resolved:\n  - How Fluent Bit silently dropped our logs: We now use" in (
        result.output
    )


def test_like_stdin_json_is_the_same_answer(cards_db, tmp_path) -> None:
    result = run("like", "-", "--db", str(cards_db), "--json", stdin=INCIDENT)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["count"] == 10 and data["results"][0]["id"] == "fluentbit"
    assert data["results"][0]["resolution"].startswith("We now use filesystem buffering")
    assert data["shared"]["components"][0]["count"] >= 2
    source = tmp_path / "draft.md"
    source.write_text(INCIDENT, encoding="utf-8")
    from_file = json.loads(run("like", str(source), "--db", str(cards_db), "--json").output)
    assert from_file == data


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "x" * (MAX_LIKE_CHARS + 1),
            "Error: the text is 20,001 characters long; the limit is 20,000\n",
        ),
        ("x" * (4 * MAX_LIKE_CHARS + 5), "Error: the text is more than 80,000 characters long;"),
        (" \n ", "Error: empty text: paste a draft postmortem or an alert text\n"),
    ],
)
def test_like_refuses_a_text_too_long_or_empty_in_one_line(cards_db, text, error) -> None:
    result = run("like", "-", "--db", str(cards_db), stdin=text)
    assert result.exit_code == 1 and result.output.startswith(error)
    assert result.output.count("\n") == 1


def test_show_and_like_only_read(cards_db) -> None:
    before = digest(cards_db)
    assert run("show", "fluentbit", "--db", str(cards_db)).exit_code == 0
    assert run("like", "-", "--db", str(cards_db), stdin=INCIDENT).exit_code == 0
    assert digest(cards_db) == before


def test_show_and_like_run_on_a_serving_install(cards_db) -> None:
    """Neither command needs torch nor the crawl extra: the stored ONNX encoder embeds."""
    code = SERVING_ONLY + (
        "import contextlib, io, json\n"
        "from mlopsmortem.cli import cli\n"
        f"path, text = {str(cards_db)!r}, {INCIDENT!r}\n"
        "out = {}\n"
        "for name, args in (('show', ['show', 'fluentbit']), ('like', ['like', '-'])):\n"
        "    buffer = io.StringIO()\n"
        "    sys.stdin = io.StringIO(text)\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        cli([*args, '--db', path, '--json'], standalone_mode=False)\n"
        "    out[name] = json.loads(buffer.getvalue())\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'datasette')\n"
        "out['heavy'] = sorted(n for n in heavy if sys.modules.get(n) is not None)\n"
        "print(json.dumps(out))\n"
    )
    out = json.loads(run_python(code).strip().splitlines()[-1])
    assert out["heavy"] == []
    assert out["show"]["card"]["detection"] == "customer-report"
    assert out["like"]["results"][0]["id"] == "fluentbit"
