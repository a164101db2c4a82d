"""Response bytes -> str: a BOM, then the declared charsets (HTTP header; for HTML also <meta>
or the XML declaration), then UTF-8, then detection, with the WHATWG supersets browsers use."""

from __future__ import annotations

import codecs
import re

import charset_normalizer

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# How far into the body a <meta charset> is looked for. Browsers stop at 1024 bytes, but real
# pages put kilobytes of inline script and style before it.
META_SCAN_BYTES = 16384
_META_CHARSET = re.compile(rb"<meta\s[^>]*?charset\s*=\s*[\"']?\s*([a-z0-9_.:-]+)", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([a-z0-9_.:-]+)", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([a-z0-9_.:-]+)", re.IGNORECASE)
# The WHATWG Encoding Standard decodes these labels with a superset, and so do browsers: a page
# declared ISO-8859-1 that uses curly quotes or dashes (0x80-0x9F) means windows-1252.
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859_1": "cp1252",
    "iso8859_9": "cp1254",
    "iso8859_11": "cp874",
    "tis_620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    # without a BOM (which is handled first) the generic labels mean little-endian
    "utf_16": "utf_16_le",
    "utf_32": "utf_32_le",
}
# Text codecs that are not charsets: a page declaring one is not written in it, and some
# (punycode) decode in quadratic time.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode_escape", "raw_unicode_escape", "undefined", "mbcs", "oem"}
)
# A declared encoding that fails on at most this share of bytes (and one byte always) is trusted
# with replacement characters: a stray byte in a UTF-8 page should not send it to guesswork.
MAX_BAD_BYTE_SHARE = 0.001


def decode_html(body: bytes, content_type: str | None) -> str:
    """Decode an HTML body: BOM, then the header charset, then <meta charset> or http-equiv (or
    an XML declaration), then UTF-8, then detection. A label is tried strictly and skipped when
    the bytes do not fit it, so a header charset overrides a wrong meta and vice versa."""
    head = body[:META_SCAN_BYTES]
    declared = [_header_charset(content_type)]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        match = pattern.search(head)
        # a <meta> that could be read as ASCII cannot be describing UTF-16 bytes (WHATWG)
        label = _codec(match.group(1).decode("ascii")) if match else None
        declared.append("utf-8" if label and label.startswith("utf_16") else label)
    return _decode(body, declared)


def decode_text(body: bytes, content_type: str | None) -> str:
    """Decode a text/plain or text/markdown body: BOM, header charset, UTF-8, detection."""
    return _decode(body, [_header_charset(content_type)])


def _decode(body: bytes, declared: list[str | None]) -> str:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    labels = list(dict.fromkeys(label for label in declared if label))
    for encoding in dict.fromkeys([*labels, "utf-8"]):
        text = _strict(body, encoding)
        if text is not None:
            return text
    for encoding in labels:  # a declared encoding may be trusted despite a few bad bytes
        text = body.decode(encoding, errors="replace")
        if text.count("\ufffd") <= MAX_BAD_BYTE_SHARE * len(body) + 1:
            return text
    best = charset_normalizer.from_bytes(body).best()
    if best is not None and best.encoding:
        return str(best)
    # WHATWG's default for undeclared legacy pages; never fails
    return body.decode("cp1252", errors="replace")


def _strict(body: bytes, encoding: str) -> str | None:
    """Decode or None; a multi-byte character cut off at the end (a capped download) is fine."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        return decoder.decode(body, final=False)
    except UnicodeError:  # UnicodeDecodeError, or a codec refusing its input outright
        return None


def _header_charset(content_type: str | None) -> str | None:
    match = _HEADER_CHARSET.search(content_type or "")
    return _codec(match.group(1)) if match else None


def _codec(label: str) -> str | None:
    """A charset label -> Python codec name (with WHATWG supersets), None if unknown.

    Only text encodings count: Python also registers bytes-to-bytes codecs (base64, hex, uu,
    quopri, zlib, bz2) and rot13 under names a page can declare, and decoding with them
    would decompress or transform the body (charset=bz2 is a decompression bomb) instead of
    decoding it. Those labels, and the pseudo-charsets in `_NOT_CHARSETS`, are unknown here.
    """
    try:
        info = codecs.lookup(label.strip().strip("\"'"))
    except LookupError:
        return None
    # _is_text_encoding is how str.encode / bytes.decode themselves refuse these codecs.
    if not getattr(info, "_is_text_encoding", True):
        return None
    name = info.name.replace("-", "_")
    if name in _NOT_CHARSETS:
        return None
    name = _SUPERSETS.get(name, name)
    return "utf-8" if name == "utf_8" else name
