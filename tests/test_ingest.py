import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from mlopsmortem.errors import SourceError
from mlopsmortem.lists.ingest import SourceSpec, ingest_sources, load_source_specs
from mlopsmortem.urls import canonicalize, story_id

LIST_A = """# List A

* [Collector dropped logs - Acme - blog post 2021](https://acme.example/logs/?utm_source=x)
    * involved: fluent-bit
    * impact: lost logs
* [Resolver meltdown - Example - postmortem 2019](https://example.org/dns)
"""

LIST_B = """# List B

* [Same story, other words - Acme - blog post 2021](https://ACME.example/logs#intro)
    * involved: Fluent Bit, buffers
* [Only here - Beta - talk 2020](https://beta.example/talk)
"""


def write(tmp_path: Path, name: str, text: str) -> SourceSpec:
    path = tmp_path / name
    path.write_text(text)
    return SourceSpec(name=path.stem, location=str(path))


def test_same_story_in_two_lists_is_one_story_with_two_provenance_rows(db, settings, tmp_path):
    a, b = write(tmp_path, "a.md", LIST_A), write(tmp_path, "b.md", LIST_B)
    report = ingest_sources(db, [a, b], settings)
    assert len(report.new_story_ids) == 3
    sid = story_id(canonicalize("https://acme.example/logs"))
    rows = list(db["story_sources"].rows_where("story_id = ?", [sid]))
    assert len(rows) == 2
    assert {json.loads(r["list_involved"])[0] for r in rows} == {"fluent-bit", "Fluent Bit"}
    story = db["stories"].get(sid)
    # the earliest source's wording wins; the link is kept exactly as list A wrote it
    assert story["title"] == "Collector dropped logs"
    assert story["url"] == "https://acme.example/logs/?utm_source=x"
    assert story["canonical_url"] == "https://acme.example/logs"


def test_reingest_is_idempotent(db, settings, tmp_path):
    specs = [write(tmp_path, "a.md", LIST_A), write(tmp_path, "b.md", LIST_B)]
    ingest_sources(db, specs, settings)
    counts = {t: db[t].count for t in ("stories", "story_sources", "story_source_history")}
    again = ingest_sources(db, specs, settings)
    assert again.new_story_ids == []
    assert again.totals()["unchanged"] == 4
    assert again.totals()["new"] == again.totals()["updated"] == 0
    assert {t: db[t].count for t in counts} == counts


def test_removed_entries_are_marked_never_deleted_and_come_back(db, settings, tmp_path):
    spec = write(tmp_path, "a.md", LIST_A)
    ingest_sources(db, [spec], settings)
    gone = story_id(canonicalize("https://example.org/dns"))
    Path(spec.location).write_text(LIST_A.split("* [Resolver")[0])
    report = ingest_sources(db, [spec], settings)
    assert report.sources[0].removed == 1
    assert db["stories"].get(gone)["removed_at"] is not None
    assert db["stories"].count == 2
    row = next(db["story_sources"].rows_where("story_id = ?", [gone]))
    assert row["removed_at"] is not None
    Path(spec.location).write_text(LIST_A)
    ingest_sources(db, [spec], settings)
    assert db["stories"].get(gone)["removed_at"] is None


def test_story_in_two_lists_is_removed_only_when_both_drop_it(db, settings, tmp_path):
    a, b = write(tmp_path, "a.md", LIST_A), write(tmp_path, "b.md", LIST_B)
    ingest_sources(db, [a, b], settings)
    sid = story_id(canonicalize("https://acme.example/logs"))
    Path(a.location).write_text("# List A\n")
    ingest_sources(db, [a, b], settings)
    story = db["stories"].get(sid)
    assert story["removed_at"] is None
    assert story["title"] == "Same story, other words"  # list B now speaks for it


def test_changed_title_and_tags_update_story_and_keep_history(db, settings, tmp_path):
    spec = write(tmp_path, "a.md", LIST_A)
    ingest_sources(db, [spec], settings)
    Path(spec.location).write_text(
        LIST_A.replace("Collector dropped logs", "Collector lost logs").replace(
            "involved: fluent-bit", "involved: fluent-bit, Elasticsearch"
        )
    )
    report = ingest_sources(db, [spec], settings)
    assert report.sources[0].updated == 1
    sid = story_id(canonicalize("https://acme.example/logs"))
    assert db["stories"].get(sid)["title"] == "Collector lost logs"
    history = list(db["story_source_history"].rows)
    assert len(history) == 1
    assert history[0]["list_title"] == "Collector dropped logs - Acme - blog post 2021"
    assert json.loads(history[0]["list_involved"]) == ["fluent-bit"]


def test_archive_links_keep_archive_url(db, settings, tmp_path):
    spec = write(
        tmp_path,
        "c.md",
        "* [Old - Org - blog post 2012](https://web.archive.org/web/2020/https://old.example/p/)\n",
    )
    ingest_sources(db, [spec], settings)
    story = next(db["stories"].rows)
    assert story["canonical_url"] == "https://old.example/p"
    assert story["archive_url"] == "https://web.archive.org/web/2020/https://old.example/p/"
    assert story["id"] == story_id("https://old.example/p")


def test_bad_entries_are_skipped_and_reported_the_rest_ingests(db, settings, tmp_path):
    spec = write(tmp_path, "bad.md", LIST_A + "* no link here\n")
    problems: list[str] = []
    report = ingest_sources(db, [spec], settings, on_problem=problems.append)
    assert problems == [f"{spec.location}:7: list item has no link: 'no link here'"]
    assert report.sources[0].skipped == 1
    assert db["stories"].count == 2


def test_unreadable_source_is_an_error_naming_it_and_others_still_ingest(db, settings, tmp_path):
    missing = SourceSpec(name="missing", location=str(tmp_path / "missing.md"))
    good = write(tmp_path, "a.md", LIST_A)
    report = ingest_sources(db, [missing, good], settings)
    assert "missing.md" in report.sources[0].error
    assert report.sources[1].new == 2
    assert db["sources"].count == 2
    assert next(db["sources"].rows_where("name = 'missing'"))["status"] == "error"


def test_http_source_sends_conditional_headers_on_reingest(db, settings, httpserver: HTTPServer):
    httpserver.expect_ordered_request("/list.md").respond_with_data(
        LIST_A, headers={"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    httpserver.expect_ordered_request(
        "/list.md", headers={"If-None-Match": '"v1"'}
    ).respond_with_data("", status=304)
    settings = settings.with_(allow_hosts=frozenset({"127.0.0.1", "localhost"}))
    spec = SourceSpec(name="remote", location=httpserver.url_for("/list.md"))
    first = ingest_sources(db, [spec], settings)
    assert first.sources[0].new == 2
    second = ingest_sources(db, [spec], settings)
    assert second.sources[0].error is None
    assert second.sources[0].unchanged == 2
    assert db["stories"].count == 2
    httpserver.check_assertions()
    requests = [r for r, _ in httpserver.log]
    assert requests[0].headers["User-Agent"].startswith("mlopsmortem/")
    source = next(db["sources"].rows)
    assert source["etag"] == '"v1"'


def test_http_source_on_a_private_address_is_refused_without_a_request(
    db, settings, httpserver: HTTPServer
):
    spec = SourceSpec(name="remote", location=httpserver.url_for("/list.md"))
    report = ingest_sources(db, [spec], settings)
    assert "refused" in report.sources[0].error.lower() or "not allowed" in report.sources[0].error
    assert httpserver.log == []


def test_http_source_error_status_is_reported(db, settings, httpserver: HTTPServer):
    httpserver.expect_request("/gone.md").respond_with_data("nope", status=404)
    settings = settings.with_(allow_hosts=frozenset({"127.0.0.1", "localhost"}))
    spec = SourceSpec(name="gone", location=httpserver.url_for("/gone.md"))
    report = ingest_sources(db, [spec], settings)
    assert report.sources[0].error.endswith("HTTP 404")


def test_default_sources_file_names_the_four_lists(settings):
    specs = load_source_specs(settings.sources_file)
    assert [s.name for s in specs] == [
        "awful-mlops",
        "k8s.af",
        "danluu-post-mortems",
        "mlops-resources",
    ]
    assert all(s.location.startswith("https://") for s in specs[:3])
    assert "codeberg.org/hjacobs/kubernetes-failure-stories" in specs[1].location
    assert Path(specs[3].location) == settings.data_dir / "lists" / "mlops-resources.md"


def test_bad_sources_file_is_a_clear_error(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text("[[source]]\nname = 'x'\n")
    with pytest.raises(SourceError, match="neither url nor path"):
        load_source_specs(path)
    path.write_text("[[source]\n")
    with pytest.raises(SourceError, match="invalid TOML"):
        load_source_specs(path)


def test_bad_ports_are_reported_with_file_and_line_and_skipped(db, settings, tmp_path):
    spec = write(
        tmp_path,
        "ports.md",
        "# Ports\n\n"
        "* [Good - Org - blog post 2021](https://good.example/a)\n"
        "* [Too big - Org - blog post 2021](https://bad.example:99999/x)\n"
        "* [Not a number - Org - blog post 2021](https://bad.example:abc/x)\n"
        "* [Also good - Org - blog post 2021](https://good.example/b)\n",
    )
    problems: list[str] = []
    report = ingest_sources(db, [spec], settings, on_problem=problems.append)
    source = report.sources[0]
    assert source.error is None
    assert source.new == 2
    assert db["stories"].count == 2
    assert [p.split(": ", 1)[0] for p in problems] == [f"{spec.location}:4", f"{spec.location}:5"]
    assert all("bad port" in p for p in problems)
    assert source.skipped == 2


def test_a_failure_mid_list_rolls_the_whole_list_back(db, settings, tmp_path, monkeypatch):
    import mlopsmortem.lists.ingest as ingest

    spec = write(tmp_path, "a.md", LIST_A)

    def broken(*args, **kwargs):
        raise RuntimeError("disk gone mid-list")

    monkeypatch.setattr(ingest, "_refresh_story", broken)
    with pytest.raises(RuntimeError):
        ingest_sources(db, [spec], settings)
    for table in ("sources", "stories", "story_sources"):
        assert db[table].count == 0, table
    monkeypatch.undo()
    ingest_sources(db, [spec], settings)
    assert db["stories"].count == 2


def test_a_remote_list_cut_at_max_bytes_is_an_error_not_a_shorter_list(
    db, settings, httpserver: HTTPServer
):
    httpserver.expect_request("/list.md").respond_with_data(LIST_A * 50)
    settings = settings.with_(allow_hosts=frozenset({"127.0.0.1", "localhost"}), max_bytes=500)
    spec = SourceSpec(name="big", location=httpserver.url_for("/list.md"))
    report = ingest_sources(db, [spec], settings)
    assert "larger than 500 bytes" in report.sources[0].error
    assert db["stories"].count == 0
