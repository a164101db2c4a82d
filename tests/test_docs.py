"""The docs' commands still parse: every `mlopsmortem ...` line in a fenced code block of
README.md, docs/*.md or bench/README.md is given to the CLI's own click parser, so a renamed
command or option cannot leave a guide that no longer works.

A line counts when it starts (after indentation or a `$ ` prompt) with `mlopsmortem ` or
`.venv/bin/mlopsmortem `; a trailing `\\` joins the next line. A concrete command must parse as
written (placeholders such as STORY_ID are plain arguments). A synopsis, a line with `[...]`,
`a|b` or `...`, is checked for its command and the names of its options only.

And the module map of docs/architecture.md lists exactly the modules of src/mlopsmortem/."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[1]
PROGRAM = re.compile(r"^\s*(?:\$\s+)?(?:\.venv/bin/)?mlopsmortem\s+(.*)$")
SHELL_OPERATORS = set(";&|<>()")


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]


def doc_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, the text after `mlopsmortem `) of each command in the file's fences."""
    found = []
    for token in MarkdownIt().parse(path.read_text()):
        if token.type != "fence" or token.map is None:
            continue
        first = token.map[0] + 2  # 1-based, after the opening fence
        lines = token.content.split("\n")
        i = 0
        while i < len(lines):
            number, line = first + i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            i += 1
            if match := PROGRAM.match(line):
                found.append((number, match.group(1)))
    return found


def shell_words(text: str) -> list[str]:
    """The words of one command as the shell splits them, up to a comment, pipe, redirection
    or the next command."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if set(word) <= SHELL_OPERATORS:
            break
        words.append(word)
    return words


def is_synopsis(text: str) -> bool:
    return bool(re.search(r"\[|\]|\.\.\.|\w\|\w", text.split("#")[0]))


def cli_error(text: str) -> str | None:
    """Why the CLI would refuse `mlopsmortem TEXT`, or None when it parses."""
    from mlopsmortem.cli import cli

    if is_synopsis(text):
        return synopsis_error(cli, text)
    args = shell_words(text)
    try:
        if not args or args[0].startswith("-"):
            cli.make_context("mlopsmortem", args)
            return None
        command = cli.commands.get(args[0])
        if command is None:
            return f"no such command {args[0]!r}"
        command.make_context(args[0], args[1:])
    except click.exceptions.Exit:  # --help, --version
        return None
    except click.UsageError as exc:
        return exc.format_message()
    return None


def synopsis_error(cli: click.Group, text: str) -> str | None:
    name, _, rest = text.partition(" ")
    command = cli.commands.get(name)
    if command is None:
        return f"no such command {name!r}"
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    known.add("--help")
    for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest.split("#")[0]):
        if option not in known:
            return f"no such option {option!r} for {name}"
    return None


def all_commands() -> list[tuple[str, str]]:
    return [
        (f"{path.relative_to(REPO)}:{number}", text)
        for path in doc_files()
        if path.exists()
        for number, text in doc_commands(path)
    ]


def test_the_readme_shows_the_commands_a_user_needs():
    shown = {shell_words(text)[0] for _, text in doc_commands(REPO / "README.md")}
    assert {"crawl", "search", "similar", "status", "changes", "export", "tag", "serve"} <= shown


@pytest.mark.parametrize(("where", "text"), all_commands())
def test_every_documented_command_parses(where, text):
    error = cli_error(text)
    assert error is None, f"{where}: mlopsmortem {text}: {error}"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("search 'lost logs' --mode keyword --component Kafka -n 5 --json", True),
        ("crawl --report r.md  # a comment --bogus", True),
        ("status --json | jq .stories", True),
        ("--version", True),
        ("search --help", True),
        ("search QUERY [--mode hybrid|semantic|keyword] [-n 10] [--json]", True),
        ("search 'lost logs' --bogus", False),
        ("search", False),  # QUERY is required
        ("serch 'lost logs'", False),
        ("search QUERY [--bogus]", False),
        ("export --format xml --out d", False),
    ],
)
def test_the_check_refuses_what_the_cli_refuses(text, ok):
    assert (cli_error(text) is None) is ok, cli_error(text)


def test_fences_and_continuations_are_read(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "mlopsmortem prose --is-not-a-command\n\n"
        "```sh\n$ mlopsmortem search x \\\n    --json\n.venv/bin/mlopsmortem status\n```\n\n"
        "    mlopsmortem indented --blocks-do-not-count\n"
    )
    assert doc_commands(doc) == [(4, "search x      --json"), (6, "status")]


def documented_modules() -> dict[str, set[str]]:
    """{package ('' for the top level): the modules docs/architecture.md's module map lists}."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    listed: dict[str, set[str]] = {}
    package = None
    for line in section.splitlines():
        if heading := re.match(r"\*\*(?:`(\w+)/`|Top level)\*\*", line):
            package = heading.group(1) or ""
            listed[package] = set()
        elif line.startswith("**"):
            package = None  # "Outside the package"
        elif package is not None and (item := re.match(r"- `(\w+)\.py`", line)):
            listed[package].add(item.group(1))
    return listed


def test_the_module_map_lists_every_module():
    source = REPO / "src" / "mlopsmortem"
    on_disk: dict[str, set[str]] = {}
    for path in source.rglob("*.py"):
        package = "" if path.parent == source else path.parent.name
        modules = on_disk.setdefault(package, set())
        if path.name != "__init__.py":
            modules.add(path.stem)
    listed = documented_modules()
    missing = {f"{p}/{m}" for p, ms in on_disk.items() for m in ms - listed.get(p, set())}
    stale = {f"{p}/{m}" for p, ms in listed.items() for m in ms - on_disk.get(p, set())}
    assert not missing and not stale, f"docs/architecture.md: missing {missing}, stale {stale}"
