"""extract.py against real trafilatura and pypdf: chrome removal, charsets, PDFs, bad input."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path

import pypdf
import pytest

from mlopsmortem.extract.charsets import decode_html
from mlopsmortem.extract.dispatch import extract_document, is_current
from mlopsmortem.extract.document import EXTRACTOR_VERSION, Document
from mlopsmortem.extract.htmltext import HtmlOptions, mark_main_content, parse_html, preclean
from mlopsmortem.extract.pdftext import AES_REASON
from tests.fixtures.extract.minipdf import pdf_from_paragraphs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "extract"
URL = "https://blog.example.com/posts/stale-features"
CAFE = "café – “quoted”"

ARTICLE_SENTENCES = [
    "At 02:10 our fraud model started approving transactions it would normally have held for "
    "review.",
    "Its scheduler marked every run as successful because the wrapper script swallowed the exit "
    "code of the copy step.",
    "23:05 The first materialisation run fails with a permissions error.",
    "max_feature_age_seconds: 3600",
    "Stale data fails quietly, so the checks have to be loud.",
]


@pytest.fixture(autouse=True)
def quiet_pypdf(caplog: pytest.LogCaptureFixture) -> None:
    # pypdf logs a warning for every oddity in a broken file; the tests make many on purpose
    caplog.set_level(logging.CRITICAL, logger="pypdf")


def flat(text: str | None) -> str:
    return " ".join((text or "").split())


def page(body: str, head: str = "") -> str:
    """A small but complete article page: enough text for trafilatura to take it as content."""
    return (
        f"<!DOCTYPE html><html><head>{head}<title>Charset test</title></head><body><article>"
        f"<h1>Charset test</h1><p>The word {CAFE} appears in this paragraph, which is long "
        "enough to be taken as the main text of the page by the extractor.</p>"
        f"<p>{body}</p></article></body></html>"
    )


# --------------------------------------------------------------------------- HTML


def test_article_kept_and_chrome_dropped() -> None:
    body = (FIXTURES / "article_with_chrome.html").read_bytes()
    doc = extract_document(body, "text/html; charset=utf-8", URL)
    assert doc.extractor == "trafilatura"
    assert doc.no_text_reason is None
    text = flat(doc.text)
    for sentence in ARTICLE_SENTENCES:
        assert sentence in text
    # every piece of chrome carries one of these words; none may survive
    assert not re.search(r"zumbrelic|quarvenite", doc.text or "", re.IGNORECASE)
    assert "Accept" not in text and "Related posts" not in text


def test_html_metadata() -> None:
    body = (FIXTURES / "article_with_chrome.html").read_bytes()
    doc = extract_document(body, "text/html", URL)
    assert doc.title == "The night the feature store went stale"
    assert doc.author == "Priya Castellane"
    assert doc.date == "2022-03-14"
    assert doc.language == "en"
    assert doc.sitename
    assert doc.extractor_version.startswith("trafilatura ")
    assert doc.extractor_version.endswith(f"; mlopsmortem-extract {EXTRACTOR_VERSION}")


def test_paragraph_breaks_kept() -> None:
    body = (FIXTURES / "article_with_chrome.html").read_bytes()
    text = extract_document(body, "text/html", URL).text or ""
    paragraphs = text.split("\n\n")
    assert paragraphs[0] == "The night the feature store went stale"
    assert any(p.startswith("At 02:10 our fraud model") for p in paragraphs)
    # a list stays one block, one item per line
    timeline = next(p for p in paragraphs if "23:05" in p)
    assert len(timeline.splitlines()) == 3
    assert "\n\n\n" not in text


def test_page_without_semantic_container() -> None:
    """No <article>, no <main>, opaque class names: the dominant block is found anyway."""
    body = (FIXTURES / "no_semantic_container.html").read_bytes()
    doc = extract_document(body, "text/html", URL)
    text = flat(doc.text)
    assert "Docker had been keeping every intermediate image layer" in text
    assert "A nightly prune of dangling images" in text  # lists survive
    assert "brelmistic" not in text.lower()
    # trafilatura alone keeps the chrome here: the anchor step is what makes the difference
    plain = extract_document(body, "text/html", URL, options=HtmlOptions(anchor=False))
    assert "brelmistic" in flat(plain.text).lower()


def test_highlighted_code_comments_are_not_chrome() -> None:
    # highlight.js and Prism class names contain "comment"; the code must survive pre-cleaning
    code = (
        '<pre><code class="language-yaml"><span class="token comment"># never retry forever</span>'
        '\n<span class="hljs-attr">retries</span>: 3\n<span class="hljs-comment"># seconds</span>'
        "</code></pre>"
    )
    body = page(f"The retry settings after the fix were these ones.</p>{code}<p>Done.")
    tree = parse_html(body)
    assert tree is not None
    assert preclean(tree) == 0
    text = extract_document(body.encode("utf-8"), "text/html", URL).text or ""
    assert "# never retry forever\nretries: 3\n# seconds" in text


def test_anchor_leaves_semantic_pages_alone() -> None:
    tree = parse_html((FIXTURES / "article_with_chrome.html").read_text(encoding="utf-8"))
    assert tree is not None
    assert mark_main_content(tree) is None


def test_anchor_ignores_small_pages() -> None:
    tree = parse_html("<html><body><div><p>Just a short note.</p></div></body></html>")
    assert tree is not None
    assert mark_main_content(tree) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"<html></html>",
        b"<!DOCTYPE html><html><head><title>Nothing</title></head><body></body></html>",
        b"<html><body><nav><a href='/'>Home</a></nav></body></html>",
        b"\x00\x00\x00\x00",
    ],
)
def test_empty_html_has_no_text(body: bytes) -> None:
    doc = extract_document(body, "text/html", URL)
    assert doc.text is None
    assert doc.text_hash is None
    assert doc.word_count == 0
    assert doc.extractor == "trafilatura"
    assert doc.no_text_reason == "no main text found"


def test_html_sniffed_without_content_type() -> None:
    body = (FIXTURES / "article_with_chrome.html").read_bytes()
    for content_type in (None, "", "application/octet-stream"):
        doc = extract_document(body, content_type, URL)
        assert doc.extractor == "trafilatura"
        assert "fraud model" in (doc.text or "")


def test_determinism() -> None:
    body = (FIXTURES / "article_with_chrome.html").read_bytes()
    first = extract_document(body, "text/html", URL)
    # other pages in between must not change the result (no shared dedup cache)
    extract_document((FIXTURES / "no_semantic_container.html").read_bytes(), "text/html", URL)
    second = extract_document(body, "text/html", URL)
    assert first == second
    assert first.text_hash == hashlib.sha256((first.text or "").encode("utf-8")).hexdigest()
    assert first.word_count == len((first.text or "").split())
    pdf = pdf_from_paragraphs(["One paragraph of text.", "Another paragraph of text."])
    assert extract_document(pdf, "application/pdf", URL) == extract_document(
        pdf, "application/pdf", URL
    )


def test_is_current() -> None:
    body = (FIXTURES / "article_with_chrome.html").read_bytes()
    for doc in (
        extract_document(body, "text/html", URL),
        extract_document(pdf_from_paragraphs(["Text."]), "application/pdf", URL),
        extract_document(b"x", "video/mp4", URL),
    ):
        assert is_current(doc.extractor_version)
    assert not is_current(None)
    assert not is_current("trafilatura 1.0.0; mlopsmortem-extract 1")
    assert not is_current("trafilatura 2.3.1; mlopsmortem-extract 0")


def test_document_is_frozen() -> None:
    doc = extract_document(b"hello", "text/plain", URL)
    with pytest.raises(AttributeError):
        doc.text = "changed"  # type: ignore[misc]
    assert isinstance(doc, Document)


# --------------------------------------------------------------------------- charsets


@pytest.mark.parametrize(
    "declaration",
    [
        '<meta charset="windows-1252">',
        "<meta charset=windows-1252>",
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
        # browsers read ISO-8859-1 as windows-1252, where the dash and quotes live
        '<meta charset="ISO-8859-1">',
    ],
)
def test_windows_1252_meta_charset(declaration: str) -> None:
    body = page("More text.", head=declaration).encode("cp1252")
    assert CAFE in decode_html(body, "text/html")
    assert CAFE in (extract_document(body, "text/html", URL).text or "")


def test_xml_declaration_encoding() -> None:
    body = ('<?xml version="1.0" encoding="windows-1252"?>\n' + page("More.")).encode("cp1252")
    assert CAFE in (extract_document(body, "application/xhtml+xml", URL).text or "")


def test_header_charset_overrides_wrong_meta() -> None:
    body = page("More text.", head='<meta charset="utf-8">').encode("cp1252")
    assert CAFE in decode_html(body, "text/html; charset=windows-1252")
    doc = extract_document(body, "text/html; charset=windows-1252", URL)
    assert CAFE in (doc.text or "")


def test_meta_used_when_header_charset_does_not_fit() -> None:
    body = page("More text.", head='<meta charset="windows-1252">').encode("cp1252")
    assert CAFE in decode_html(body, "text/html; charset=utf-8")


def test_utf8_bom() -> None:
    body = b"\xef\xbb\xbf" + page("More text.").encode("utf-8")
    text = decode_html(body, "text/html")
    assert CAFE in text and not text.startswith("\ufeff")
    # the BOM is certain, a contradicting label is not
    assert CAFE in decode_html(body, "text/html; charset=windows-1252")
    assert CAFE in (extract_document(body, "text/html", URL).text or "")


def test_utf16_bom() -> None:
    body = b"\xff\xfe" + page("More text.").encode("utf-16-le")
    assert CAFE in decode_html(body, None)


def test_undeclared_windows_1252_detected() -> None:
    body = page("Nothing declares the encoding of this page, so it has to be detected.")
    assert CAFE in decode_html(body.encode("cp1252"), "text/html")
    assert CAFE in decode_html(body.encode("utf-8"), "text/html")


def test_truncated_utf8_is_not_mojibake() -> None:
    # a capped download can end in the middle of a multi-byte character
    body = (page("More text.", head='<meta charset="utf-8">') + "€").encode("utf-8")[:-1]
    assert CAFE in decode_html(body, "text/html")


def test_unknown_charset_label_ignored() -> None:
    body = page("More.", head='<meta charset="x-no-such-charset">').encode("utf-8")
    assert CAFE in decode_html(body, "text/html; charset=bogus")


@pytest.mark.parametrize("body", [bytes(range(256)) * 4, b"\xff" * 1000, b"\x81\x8d\x8f"])
def test_decode_never_raises(body: bytes) -> None:
    assert isinstance(decode_html(body, "text/html; charset=utf-16"), str)


# --------------------------------------------------------------------------- PDF

PDF_PARAGRAPHS = [
    "Between 09:20 and 10:30 the inference API was unreachable for most customers in Europe, "
    "because a regional network announced more specific routes for our prefix.",
    "No data was exposed. Requests that reached us were served normally; the failure was one "
    f"of reachability alone. The {CAFE} line checks WinAnsi characters.",
    "We now announce the more specific prefixes ourselves and alert on new origins.",
]


def test_pdf_text_paragraphs_and_metadata() -> None:
    body = pdf_from_paragraphs(PDF_PARAGRAPHS, title="Route leak review", author="Net Team")
    doc = extract_document(body, "application/pdf", URL)
    assert doc.extractor == "pypdf"
    assert doc.extractor_version.startswith(f"pypdf {pypdf.__version__}; ")
    assert doc.no_text_reason is None
    assert doc.title == "Route leak review"
    assert doc.author == "Net Team"
    # wrapped lines are joined again, paragraphs are separated by a blank line
    assert (doc.text or "").split("\n\n") == PDF_PARAGRAPHS
    assert doc.word_count == sum(len(p.split()) for p in PDF_PARAGRAPHS)


def test_pdf_sniffed_by_magic() -> None:
    body = pdf_from_paragraphs(PDF_PARAGRAPHS)
    for content_type in (None, "application/octet-stream", "binary/octet-stream"):
        assert extract_document(body, content_type, URL).extractor == "pypdf"


def test_pdf_all_pages_and_running_footer() -> None:
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
    paragraphs = [
        f"{words[i % 13].title()} {words[i * 7 % 13]} was checked during the review, number {i}."
        for i in range(60)
    ]
    body = pdf_from_paragraphs(paragraphs, footer="Acme incident review - page {page}")
    assert len(pypdf.PdfReader(io.BytesIO(body)).pages) > 2
    doc = extract_document(body, "application/pdf", URL)
    text = doc.text or ""
    assert "Acme incident review" not in text
    assert text.split("\n\n") == paragraphs


def test_pdf_without_text_layer() -> None:
    doc = extract_document(pdf_from_paragraphs([]), "application/pdf", URL)
    assert doc.text is None
    assert doc.no_text_reason == "pdf has no text layer"


def test_encrypted_pdf() -> None:
    writer = pypdf.PdfWriter(
        clone_from=pypdf.PdfReader(io.BytesIO(pdf_from_paragraphs(["Secret."])))
    )
    writer.encrypt(user_password="letmein", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    doc = extract_document(out.getvalue(), "application/pdf", URL)
    assert doc.text is None
    assert doc.extractor == "pypdf"
    assert doc.no_text_reason == "pdf is encrypted"


def test_aes_encrypted_pdf() -> None:
    # an AES-256 /Encrypt dictionary: without the optional cryptography package pypdf cannot
    # even try the empty password, with it the (junk) password check fails
    aes = (
        "<< /Filter /Standard /V 5 /R 6 /Length 256 /CF << /StdCF << /CFM /AESV3 /AuthEvent"
        " /DocOpen /Length 32 >> >> /StmF /StdCF /StrF /StdCF /P -4"
        f" /O <{'00' * 48}> /U <{'00' * 48}> /OE <{'00' * 32}> /UE <{'00' * 32}> >>"
    )
    doc = extract_document(pdf_from_paragraphs(["Hello."], encrypt=aes), "application/pdf", URL)
    assert doc.text is None
    assert doc.no_text_reason in ("pdf is encrypted", AES_REASON)


def test_pdf_with_empty_user_password_is_read() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_from_paragraphs(["Open."]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    assert extract_document(out.getvalue(), "application/pdf", URL).text == "Open."


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"this is not a pdf at all",
        b"%PDF-1.4\n\x00\x01\x02 garbage trailer",
        b"%PDF-",
        bytes(range(256)) * 8,
    ],
)
def test_garbage_labelled_pdf(body: bytes) -> None:
    doc = extract_document(body, "application/pdf", URL)
    assert doc.text is None
    assert doc.extractor == "pypdf"
    assert doc.no_text_reason and doc.no_text_reason.startswith("pdf ")


def test_damaged_pdfs_never_raise() -> None:
    good = pdf_from_paragraphs(PDF_PARAGRAPHS * 10, title="T")
    for cut in range(0, len(good), max(1, len(good) // 60)):
        for body in (good[:cut], good[:cut] + b"\x00" * 40 + good[cut + 40 :]):
            doc = extract_document(body, "application/pdf", URL)
            assert (doc.text is None) == (doc.no_text_reason is not None)


# --------------------------------------------------------------------------- other types


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("video/mp4", "video/mp4: no text to extract"),
        ("image/png; charset=binary", "image/png: no text to extract"),
        ("audio/mpeg", "audio/mpeg: no text to extract"),
        ("application/octet-stream", "application/octet-stream: no text to extract"),
        ("application/vnd.ms-powerpoint", "application/vnd.ms-powerpoint: no text to extract"),
        (None, "no content type: no text to extract"),
    ],
)
def test_no_text_types(content_type: str | None, reason: str) -> None:
    body = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(200)
    doc = extract_document(body, content_type, URL)
    assert doc.text is None
    assert doc.extractor == "none"
    assert doc.no_text_reason == reason
    assert doc.extractor_version == f"mlopsmortem-extract {EXTRACTOR_VERSION}"


def test_plain_text_and_markdown_kept_as_is() -> None:
    markdown = "# Outage\r\n\r\nThe *cache* expired – all at once.\r\n"
    doc = extract_document(markdown.encode("utf-8"), "text/markdown; charset=utf-8", URL)
    assert doc.text == "# Outage\n\nThe *cache* expired – all at once."
    assert doc.extractor == "plain"
    plain = extract_document(CAFE.encode("cp1252"), "text/plain; charset=windows-1252", URL)
    assert plain.text == CAFE
    empty = extract_document(b" \n ", "text/plain", URL)
    assert empty.text is None and empty.no_text_reason == "empty text"


@pytest.mark.parametrize("label", ["rot13", "base64", "hex", "uu", "bz2", "zlib", "quopri"])
def test_bytes_codecs_are_not_charsets(label: str) -> None:
    page = f"<html><head><meta charset={label}><title>T</title></head><body><p>café ok</p>"
    body = page.encode("utf-8")
    assert "café ok" in decode_html(body, f"text/html; charset={label}")
    document = extract_document(body, f"text/html; charset={label}", "https://x.example/")
    assert document.text is None or isinstance(document.text, str)
