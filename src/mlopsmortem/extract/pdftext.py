"""PDF -> text with pypdf: lines reflowed into paragraphs, running headers and footers dropped.

Uses pypdf's layout mode, the only one that shows the vertical gap between paragraphs, so
paragraph breaks survive for the chunker. A heading with no gap after it stays glued to its
paragraph. Broken or AES-encrypted files give a no-text Document with a reason, never an error.

pypdf reports every repair it makes to a broken file as a logging warning, thousands per
hostile PDF, which reach stderr through logging's last-resort handler. Importing this module
routes the `pypdf` loggers to this module's logger at DEBUG level instead.
"""

from __future__ import annotations

import io
import logging
import re
import zlib

import pypdf
import pypdf.errors

from mlopsmortem.extract.document import (
    CONTROL_CHARS,
    Document,
    clean_field,
    extractor_versions,
    language_code,
    make_document,
    no_text,
)

log = logging.getLogger(__name__)


class _PypdfToDebug(logging.Handler):
    """Re-logs a pypdf record as a DEBUG record of this module's logger."""

    def emit(self, record: logging.LogRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a malformed format never reaches stderr either
                message = str(record.msg)
            log.debug("pypdf (%s): %s", record.name, message)


def _route_pypdf_logging() -> None:
    pypdf_log = logging.getLogger("pypdf")
    if not any(isinstance(handler, _PypdfToDebug) for handler in pypdf_log.handlers):
        pypdf_log.addHandler(_PypdfToDebug())
    pypdf_log.propagate = False  # nothing to stderr through logging.lastResort


_route_pypdf_logging()
_PDF_MAGIC = re.compile(rb"^\s*%PDF-")
# pypdf decrypts AES (even with an empty password) only with the optional cryptography package.
AES_REASON = "pdf is encrypted with AES: reading it needs the cryptography package"
# What pypdf raises on broken files beyond its own errors: its parser indexes and converts raw
# objects without checking them (some checks are plain asserts), and compressed streams can be
# corrupt.
PDF_ERRORS = (
    pypdf.errors.PyPdfError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    zlib.error,
    RecursionError,
)
# Running headers and footers are short; a long recurring line is more likely content.
MAX_RUNNING_LINE = 100
_BULLET = re.compile(r"^\s*(?:[•◦▪●‣\-–*]|\d{1,3}[.)])\s")
_SENTENCE_END = re.compile(r"[.!?:;\"”’)\]]$")


def has_pdf_magic(body: bytes) -> bool:
    return _PDF_MAGIC.match(body[:64]) is not None


def extract_pdf(body: bytes) -> Document:
    versions = extractor_versions("pypdf", pypdf.__version__)
    try:
        # pypdf already opens files encrypted with an empty user password (owner-only DRM)
        reader = pypdf.PdfReader(io.BytesIO(body))
        page_objects = list(reader.pages)
    except pypdf.errors.FileNotDecryptedError:
        return no_text("pypdf", versions, "pdf is encrypted")
    except pypdf.errors.DependencyError:
        return no_text("pypdf", versions, AES_REASON)
    except PDF_ERRORS as error:
        return no_text("pypdf", versions, f"pdf could not be read: {type(error).__name__}")
    pages, failed = [], None
    for page in page_objects:
        # one broken page (bad font, corrupt stream) costs that page, not the document
        try:
            pages.append(_pdf_page_lines(page))
        except pypdf.errors.FileNotDecryptedError:
            return no_text("pypdf", versions, "pdf is encrypted")
        except pypdf.errors.DependencyError:
            return no_text("pypdf", versions, AES_REASON)
        except PDF_ERRORS as error:
            failed = failed or error
    text = _pdf_text(pages)
    if not text and failed is not None:
        reason = f"pdf could not be read: {type(failed).__name__}"
        return no_text("pypdf", versions, reason)
    if not text:
        return no_text("pypdf", versions, "pdf has no text layer")
    title, author, date, language = _pdf_metadata(reader)
    return make_document(
        text,
        extractor="pypdf",
        versions=versions,
        title=title,
        author=author,
        date=date,
        sitename=None,
        language=language,
    )


def _pdf_page_lines(page: pypdf.PageObject) -> list[str]:
    """Lines of one page; '' marks a vertical gap (a paragraph break). Layout mode is what shows
    the gaps; plain mode is the fallback for pages the layout code cannot handle."""
    try:
        raw = page.extract_text(extraction_mode="layout")
    except PDF_ERRORS:
        raw = page.extract_text()
    raw = CONTROL_CHARS.sub("", raw)
    # layout mode pads words to their x position; the columns mean nothing once flowed
    return [" ".join(line.split()) for line in raw.splitlines()]


def _pdf_text(pages: list[list[str]]) -> str:
    pages = _drop_running_lines(pages)
    paragraphs: list[str] = []
    current: list[str] = []
    for page in pages:
        if current and _SENTENCE_END.search(current[-1]):
            paragraphs.append(_join_lines(current))
            current = []
        for line in page:
            if line:
                current.append(line)
            elif current:
                paragraphs.append(_join_lines(current))
                current = []
    if current:
        paragraphs.append(_join_lines(current))
    return "\n\n".join(p for p in paragraphs if p)


def _join_lines(lines: list[str]) -> str:
    """Reflow wrapped lines into one paragraph; list items stay on their own lines."""
    out = lines[0]
    for line in lines[1:]:
        if _BULLET.match(line):
            out += "\n" + line
        elif (
            out.endswith("-") and (out[-2:-1].isalpha() or out[-2:] == "--") and line[:1].islower()
        ):
            out += line  # a word hyphenated across lines: keep the hyphen, lose the break
        else:
            out += " " + line
    return out


def _drop_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Remove running headers and footers: a short first (or last) line that recurs, digits
    aside, at the top (or bottom) of most pages ('Acme report - page 3 of 9')."""
    if len(pages) < 2:
        return pages

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", line)

    def edges(page: list[str]) -> tuple[int | None, int | None]:
        filled = [i for i, line in enumerate(page) if line]
        return (filled[0], filled[-1]) if filled else (None, None)

    quorum = max(2, len(pages) // 2 + 1)
    running = []
    for side in (0, 1):
        counts: dict[str, int] = {}
        for page in pages:
            index = edges(page)[side]
            if index is not None and len(page[index]) <= MAX_RUNNING_LINE:
                counts[key(page[index])] = counts.get(key(page[index]), 0) + 1
        running.append({line for line, n in counts.items() if n >= quorum})
    cleaned = []
    for page in pages:
        drop = {
            index
            for side, index in enumerate(edges(page))
            if index is not None and key(page[index]) in running[side]
        }
        cleaned.append([line for i, line in enumerate(page) if i not in drop])
    return cleaned


def _pdf_metadata(reader: pypdf.PdfReader) -> tuple[str | None, ...]:
    """Title, author, ISO creation date and language from the PDF; a broken info dictionary
    costs the metadata, not the text."""
    try:
        info = reader.metadata
        title = clean_field(info.title) if info else None
        author = clean_field(info.author) if info else None
    except PDF_ERRORS:
        info = title = author = None
    try:
        created = info.creation_date if info else None
        date = created.date().isoformat() if created else None
    except PDF_ERRORS:
        date = None
    try:
        language = language_code(reader.trailer["/Root"].get("/Lang"))
    except PDF_ERRORS:
        language = None
    return title, author, date, language
