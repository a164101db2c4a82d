"""The scheduling examples (examples/) run as written: the inline Python steps of the GitHub
Actions workflow, on a real knowledge base."""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import yaml

from tests.support.export_kb import build_kb

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "examples" / "github-actions-recrawl.yml"
HEREDOC = re.compile(r"python - <<'PY'\n(.*?)\n\s*PY\n", re.S)


def workflow_scripts() -> dict[str, str]:
    """{step name: its inline Python}, dedented as the shell would pass it."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["crawl"]["steps"]
    scripts = {}
    for step in steps:
        for body in HEREDOC.findall(step.get("run", "") + "\n"):
            scripts[step["name"]] = "\n".join(line.strip() and line for line in body.split("\n"))
    return scripts


def test_the_workflows_python_steps_run_on_a_knowledge_base(db, tmp_path, settings):
    build_kb(db)
    db.conn.commit()
    (bodies,) = db.conn.execute("SELECT count(*) FROM page_bodies").fetchone()
    assert bodies  # the public copy must drop something
    scripts = workflow_scripts()
    assert set(scripts) == {
        "Fold the write-ahead log into the database file",
        "Publish with Datasette on Cloud Run",
    }
    (tmp_path / "kb").mkdir()
    (tmp_path / "publish").mkdir()  # the publish step's `mkdir -p publish`, before its script
    assert "mkdir -p publish\n" in WORKFLOW.read_text()
    for suffix in ("", "-wal"):  # as a crawl leaves it: the fold step checkpoints the log
        source = Path(f"{settings.db_path}{suffix}")
        if source.exists():
            shutil.copy(source, tmp_path / "kb" / f"mlopsmortem.db{suffix}")
    for name, script in scripts.items():
        done = subprocess.run(
            [sys.executable, "-"], input=script, text=True, cwd=tmp_path, capture_output=True
        )
        assert done.returncode == 0, (name, done.stderr)
    with sqlite3.connect(tmp_path / "publish" / "mlopsmortem.db") as public:
        assert public.execute("SELECT count(*) FROM page_bodies").fetchone() == (0,)
        stories = public.execute("SELECT count(*) FROM stories").fetchone()[0]
    assert stories == db.conn.execute("SELECT count(*) FROM stories").fetchone()[0] > 0


# an invocation: at the start of a line (or of a workflow's `run:`) or after .venv/bin/, not
# in a comment or a message
COMMAND = re.compile(
    r"(?:^[ \t]*(?:run: )?|bin/)mlopsmortem (crawl|export|changes|status)\b([^;}|&\n']*)", re.M
)


def example_commands() -> list[tuple[str, str, list[str]]]:
    """(file, command, arguments) of every mlopsmortem command the examples run, with the shell's
    substitutions ($(date ...), "$MLOPSMORTEM_DB", cron's and systemd's escapes) filled in."""
    found = []
    for path in sorted((REPO / "examples").rglob("*")):
        if not path.is_file():
            continue
        for command, rest in COMMAND.findall(path.read_text()):
            rest = re.sub(r"\$\$?\(date[^)]*\)", "2026-01-01", rest).split(">>")[0]
            rest = rest.replace('"$MLOPSMORTEM_DB"', "kb.db")
            found.append((path.name, command, shlex.split(rest)))
    return found


def test_every_example_command_is_one_the_cli_accepts():
    from mlopsmortem.cli import cli

    commands = example_commands()
    assert {c for _, c, _ in commands} == {"crawl", "export", "changes", "status"}
    for name, command, args in commands:
        try:
            cli.commands[command].make_context(command, list(args))
        except click.UsageError as exc:
            message = f"{name}: mlopsmortem {command} {shlex.join(args)}: {exc}"
            raise AssertionError(message) from exc
