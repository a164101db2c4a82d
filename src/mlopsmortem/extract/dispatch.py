"""Stored page bytes + content type -> a `Document` of clean text and metadata.

HTML goes through trafilatura, PDF through pypdf, text/plain and text/markdown are decoded and
kept as they are; anything else (video, images, slide viewers, ...) yields no text and a reason.
Text keeps a blank line between paragraphs (and headings, lists, code blocks, tables) because
the passage chunker splits on them.

This module chooses the extractor by media type (or by the bytes when the label says nothing)
and holds the plain-text one. HTML is `htmltext`, PDF is `pdftext`; `charsets` decodes bytes
and `document` builds the Document they all return. docs/crawling.md explains the choices.
"""

from __future__ import annotations

import pypdf
import trafilatura

from mlopsmortem.extract.charsets import decode_text
from mlopsmortem.extract.document import (
    Document,
    extractor_versions,
    make_document,
    no_text,
)
from mlopsmortem.extract.htmltext import (
    DEFAULT_HTML_OPTIONS,
    HtmlOptions,
    extract_html,
    looks_like_html,
)
from mlopsmortem.extract.pdftext import extract_pdf, has_pdf_magic

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
# Labels that say nothing about the bytes: the body itself decides (PDF magic, HTML tags).
GENERIC_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "binary/octet-stream",
        "application/unknown",
        "unknown/unknown",
        "application/x-download",
        "application/force-download",
    }
)


# --------------------------------------------------------------------------- public entry point


def extract_document(
    body: bytes,
    content_type: str | None,
    url: str,
    *,
    options: HtmlOptions = DEFAULT_HTML_OPTIONS,
) -> Document:
    """Turn a stored response body into a Document. Bad bytes (corrupt PDF, binary, empty page)
    give a Document with text None and a `no_text_reason`; ExtractError is raised only when
    trafilatura itself fails on a page, a library fault that a caller should record per page."""
    mime = media_type(content_type)
    if mime in PDF_TYPES or has_pdf_magic(body):
        return extract_pdf(body)
    if mime in HTML_TYPES or (mime in GENERIC_TYPES and looks_like_html(body)):
        return extract_html(body, content_type, url, options)
    if mime in TEXT_TYPES:
        return _extract_plain(body, content_type)
    return no_text("none", extractor_versions(), f"{mime or 'no content type'}: no text to extract")


def current_versions() -> frozenset[str]:
    """Every `extractor_version` this build writes (one per extractor)."""
    return frozenset(
        {
            extractor_versions("trafilatura", trafilatura.__version__),
            extractor_versions("pypdf", pypdf.__version__),
            extractor_versions(),
        }
    )


def is_current(extractor_version: str | None) -> bool:
    """Whether a stored document was made by this build: same rules (EXTRACTOR_VERSION) and the
    same trafilatura/pypdf versions. A False asks for re-extraction from the stored body."""
    return extractor_version in current_versions()


def media_type(content_type: str | None) -> str:
    """'Text/HTML; charset=UTF-8' -> 'text/html'; None -> ''."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------- plain text


def _extract_plain(body: bytes, content_type: str | None) -> Document:
    versions = extractor_versions()
    # line endings are normalised so the hash does not depend on how the server stored the file
    text = decode_text(body, content_type).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return no_text("plain", versions, "empty text")
    return make_document(
        text,
        extractor="plain",
        versions=versions,
        title=None,
        author=None,
        date=None,
        sitename=None,
        language=None,
    )
