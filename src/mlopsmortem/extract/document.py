"""The `Document` every extractor returns, and what they share in building one: the metadata
clean-up, language codes and the version string that says which rules and libraries made it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Bump whenever a setting or a rule of an extractor (htmltext, pdftext, plain text in extract)
# changes what text comes out for the same bytes, so that stored documents can be re-extracted;
# the library versions are recorded beside it.
EXTRACTOR_VERSION = "1"

# C0 control characters but tab and line ends: lxml refuses str input that holds them, and
# pages, PDF text and PDF metadata do contain them.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Document:
    text: str | None  # None when there is no text
    title: str | None
    author: str | None
    date: str | None  # ISO date (YYYY-MM-DD) if found
    sitename: str | None
    language: str | None
    word_count: int
    text_hash: str | None  # sha256 hex of text
    extractor: str  # "trafilatura" | "pypdf" | "plain" | "none"
    extractor_version: str  # e.g. "trafilatura 2.3.1; mlopsmortem-extract 1"
    no_text_reason: str | None  # why text is None


def extractor_versions(library: str | None = None, version: str | None = None) -> str:
    own = f"mlopsmortem-extract {EXTRACTOR_VERSION}"
    return f"{library} {version}; {own}" if library else own


def make_document(
    text: str,
    *,
    extractor: str,
    versions: str,
    title: str | None,
    author: str | None,
    date: str | None,
    sitename: str | None,
    language: str | None,
) -> Document:
    return Document(
        text=text,
        title=clean_field(title),
        author=clean_field(author),
        date=date,
        sitename=clean_field(sitename),
        language=language,
        word_count=len(text.split()),
        text_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        extractor=extractor,
        extractor_version=versions,
        no_text_reason=None,
    )


def no_text(extractor: str, versions: str, reason: str) -> Document:
    return Document(
        text=None,
        title=None,
        author=None,
        date=None,
        sitename=None,
        language=None,
        word_count=0,
        text_hash=None,
        extractor=extractor,
        extractor_version=versions,
        no_text_reason=reason,
    )


def clean_field(value: object) -> str | None:
    """One line of metadata; bylines leave separators behind ('Orbitra · ·')."""
    if not isinstance(value, str):
        return None
    return " ".join(CONTROL_CHARS.sub("", value).split()).strip(" ·|•,;:/–—-") or None


def language_code(value: object) -> str | None:
    """'en-US' / 'en_GB' / 'EN' -> 'en'; anything that is not a language tag -> None."""
    if not isinstance(value, str):
        return None
    match = re.match(r"^\s*([a-zA-Z]{2,3})(?:[-_][a-zA-Z0-9]+)*\s*$", value)
    return match.group(1).lower() if match else None
