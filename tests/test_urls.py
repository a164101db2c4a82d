import hashlib

import pytest

from mlopsmortem.urls import canonical, canonicalize, story_id, unwrap_archive


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Example.COM/a", "https://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a/", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com/a?utm_source=x&utm_medium=y", "https://example.com/a"),
        ("https://example.com/a?id=3&utm_campaign=z&fbclid=abc", "https://example.com/a?id=3"),
        ("https://example.com/a?gclid=1&b=2&a=1", "https://example.com/a?b=2&a=1"),
        (
            "https://www.youtube.com/watch?v=7TYLYjaHB64&list=PLmI_IVYHB9Fred0mR-280Uro9HOH9Lo98",
            "https://www.youtube.com/watch?v=7TYLYjaHB64&list=PLmI_IVYHB9Fred0mR-280Uro9HOH9Lo98",
        ),
        (
            "https://en.wikipedia.org/wiki/Shellshock_(software_bug)",
            "https://en.wikipedia.org/wiki/Shellshock_(software_bug)",
        ),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
        ("https://example.com/%7Euser", "https://example.com/~user"),
        ("https://example.com/with space", "https://example.com/with%20space"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("https://Example.com./a", "https://example.com/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com/doc.pdf#page=3", "https://example.com/doc.pdf"),
    ],
)
def test_canonicalize(raw: str, expected: str) -> None:
    assert canonicalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "original"),
    [
        (
            "https://web.archive.org/web/20211006135542/https://blog.cloudflare.com/post-82515/",
            "https://blog.cloudflare.com/post-82515",
        ),
        (
            "https://web.archive.org/web/20190914025003/http://www.availabilitydigest.com:80/a.htm",
            "http://www.availabilitydigest.com/a.htm",
        ),
        ("http://web.archive.org/web/2019id_/https://x.example/a", "https://x.example/a"),
        ("https://archive.org/web/20200101/x.example/a", "http://x.example/a"),
    ],
)
def test_archive_links_become_the_original_with_archive_kept(raw: str, original: str) -> None:
    result = canonical(raw)
    assert result.url == original
    assert result.archive_url == raw


def test_plain_links_have_no_archive_url() -> None:
    assert unwrap_archive("https://example.com/web/2020/x") is None
    assert canonical("https://example.com/a").archive_url is None


def test_story_id_is_stable_and_follows_the_canonical_form() -> None:
    assert story_id(canonicalize("HTTPS://Example.com/a/#x")) == story_id(
        canonicalize("https://example.com/a")
    )
    assert len(story_id("https://example.com/a")) == 16
    assert story_id("https://example.com/a") != story_id("https://example.com/b")


def test_a_bare_query_name_stays_bare_and_keeps_its_story_id() -> None:
    assert canonicalize("https://status.example/incidents/642?1024") == (
        "https://status.example/incidents/642?1024"
    )
    assert canonicalize("https://h.example/p?a&b=1&utm_source=x&c") == "https://h.example/p?a&b=1&c"
    # Identity is unchanged from when the canonical form added "=": ids of stories in old
    # databases stay the same, and ?1024 and ?1024= are one story.
    assert story_id("https://h.example/p?1024") == story_id("https://h.example/p?1024=")
    legacy = hashlib.sha256(b"https://h.example/p?a=&b=1").hexdigest()[:16]
    assert story_id(canonicalize("https://h.example/p?a&b=1")) == legacy


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://h.example:99999/p", "bad port"),
        ("https://h.example:abc/p", "bad port"),
        ("http://[::1", "IPv6"),
    ],
)
def test_unusable_urls_raise_value_error_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        canonicalize(url)
