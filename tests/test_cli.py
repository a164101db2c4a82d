import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from mlopsmortem.cli import cli
from mlopsmortem.db import open_db

LIST = (
    "* [A story - Org - blog post 2020](https://a.example/story)\n"
    "    * involved: DNS\n"
    "* broken entry\n"
)


def test_ingest_uses_db_option_and_prints_summary(tmp_path: Path) -> None:
    source = tmp_path / "list.md"
    source.write_text(LIST)
    result = CliRunner().invoke(cli, ["ingest", "--db", str(tmp_path / "x.db"), str(source)])
    assert result.exit_code == 0, result.output
    assert "list: entries 1 new, 0 updated, 0 unchanged, 0 removed, 1 skipped" in result.output
    assert f"{source}:3: list item has no link" in result.output
    db = open_db(tmp_path / "x.db")
    assert db["stories"].count == 1
    run = next(db["runs"].rows)
    assert (run["command"], run["status"]) == ("ingest", "ok")


def test_db_defaults_to_environment_variable(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "list.md"
    source.write_text(LIST)
    monkeypatch.setenv("MLOPSMORTEM_DB", str(tmp_path / "env.db"))
    result = CliRunner().invoke(cli, ["ingest", "--quiet", str(source)])
    assert result.exit_code == 0
    assert "entries" not in result.output  # --quiet prints no summary
    assert (tmp_path / "env.db").exists()


def test_unreadable_source_fails_with_code_2_and_others_still_ingest(tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text(LIST)
    result = CliRunner().invoke(
        cli, ["ingest", "--db", str(tmp_path / "x.db"), str(tmp_path / "nope.md"), str(good)]
    )
    assert result.exit_code == 2
    assert "nope.md: cannot read source" in result.output
    assert open_db(tmp_path / "x.db")["stories"].count == 1


def test_library_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    sources_toml = tmp_path / "bad.toml"
    sources_toml.write_text("[[source]]\nname='x'\n")
    result = CliRunner().invoke(
        cli, ["ingest", "--db", str(tmp_path / "x.db"), "--sources-file", str(sources_toml)]
    )
    assert result.exit_code == 1
    assert result.output == f"Error: {sources_toml}: source #1 has neither url nor path\n"


def test_json_summary(tmp_path: Path) -> None:
    source = tmp_path / "list.md"
    source.write_text(LIST)
    result = CliRunner().invoke(
        cli, ["ingest", "--db", str(tmp_path / "x.db"), "--json", str(source)]
    )
    assert result.exit_code == 0
    assert '"new_stories": 1' in result.output


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlopsmortem", "--help"], capture_output=True, text=True, check=True
    )
    assert "ingest" in result.stdout
