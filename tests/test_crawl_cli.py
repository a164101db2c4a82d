"""`mlopsmortem crawl` as a scheduler runs it: exit codes, change report, markdown report."""

import json

from click.testing import CliRunner

from mlopsmortem.cli import cli
from mlopsmortem.crawl.scheduler import crawl_lock
from mlopsmortem.db import open_db


def serve_site(httpserver) -> str:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/live").respond_with_data(
        "<html><body><article><h1>Resolver outage</h1>"
        + "<p>CoreDNS pods ran out of memory and every lookup timed out for an hour.</p>" * 5
        + "</article></body></html>",
        content_type="text/html",
    )
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    httpserver.expect_request("/wayback").respond_with_json({"archived_snapshots": {}})
    return httpserver.url_for("/")


def write_list(tmp_path, base: str):
    path = tmp_path / "list.md"
    path.write_text(
        f"* [Resolver outage - Org - postmortem 2021]({base}live)\n"
        "    * involved: CoreDNS\n"
        f"* [Vanished story - Org - blog post 2019]({base}gone)\n"
        "    * impact: outage\n"
    )
    return path


def crawl_args(tmp_path, httpserver, *sources: str) -> list[str]:
    return [
        "crawl",
        *sources,
        "--db",
        str(tmp_path / "kb.db"),
        "--allow-host",
        "localhost",
        "--delay",
        "0",
        "--wayback-api",
        httpserver.url_for("/wayback"),
    ]


def test_completed_crawl_with_a_dead_link_exits_0_and_reports(tmp_path, httpserver) -> None:
    listing = write_list(tmp_path, serve_site(httpserver))
    report_path = tmp_path / "report.md"
    args = crawl_args(tmp_path, httpserver, str(listing))
    result = CliRunner().invoke(cli, [*args, "--json", "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["new_stories"], report["changed_pages"], report["newly_dead"]) == (2, 1, 1)
    assert report["stages"]["embed"]["embedded"] > 0
    markdown = report_path.read_text()
    assert "| new stories | 2 |" in markdown and "| newly dead | 1 |" in markdown
    run = list(open_db(tmp_path / "kb.db")["runs"].rows)[-1]
    assert (run["command"], run["status"]) == ("crawl", "ok")
    assert json.loads(run["report"])["newly_dead"] == 1

    again = CliRunner().invoke(cli, [*args, "--json"])
    assert again.exit_code == 0
    second = json.loads(again.output)
    assert (second["new_stories"], second["changed_pages"], second["newly_dead"]) == (0, 0, 0)
    assert second["stages"]["embed"]["embedded"] == 0


def test_unreadable_source_exits_2_and_the_rest_still_crawls(tmp_path, httpserver) -> None:
    listing = write_list(tmp_path, serve_site(httpserver))
    args = crawl_args(tmp_path, httpserver, str(tmp_path / "missing.md"), str(listing))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "missing.md: cannot read source" in result.output
    assert open_db(tmp_path / "kb.db")["pages"].count == 2
    run = list(open_db(tmp_path / "kb.db")["runs"].rows)[-1]
    assert run["status"] == "partial"


def test_crawl_while_another_runs_exits_1_with_one_line(tmp_path, httpserver) -> None:
    listing = write_list(tmp_path, serve_site(httpserver))
    with crawl_lock(tmp_path / "kb.db"):
        result = CliRunner().invoke(cli, crawl_args(tmp_path, httpserver, str(listing)))
    assert result.exit_code == 1
    assert result.output.startswith("Error: another crawl is running on")
    assert result.output.count("\n") == 1
