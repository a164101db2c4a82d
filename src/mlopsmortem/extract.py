"""Stored page bytes + content type -> a `Document` of clean text and metadata.

HTML goes through trafilatura, PDF through pypdf, text/plain and text/markdown are decoded and
kept as they are; anything else (video, images, slide viewers, ...) yields no text and a reason.
Text keeps a blank line between paragraphs (and headings, lists, code blocks, tables) because
the passage chunker splits on them.

Why these settings
------------------
Measured with bench/extract.py on two corpora: the demo site (data/demo: 40 HTML pages in five
layouts - blog, status page, reader view, code-host README, forum thread - plus 3 PDFs, chrome
marked with sentinel words) and 37 real postmortems from ../shared rendered at bench time into
seven layouts with heavy chrome (one with opaque CSS-module class names and no <article>/<main>,
one with calls to action inside the article) plus a PDF each. "leak" is the share of HTML pages
whose text contains a sentinel (target <= 2 %); "recall" the mean / minimum share of each
article's own sentences found in the text (target >= 95 %).

    configuration                        demo leak  recall mean/min  shared leak  recall mean/min
    trafilatura defaults (comments on)      32.5 %     97.0 / 46.7 %     28.2 %     95.9 / 32.2 %
    favor_precision                         32.5 %     97.0 / 46.7 %     28.2 %     95.8 / 32.2 %
    favor_recall                            32.5 %     99.9 / 96.7 %     28.6 %     99.0 / 71.0 %
    pre-cleaning only                        7.5 %     97.0 / 46.7 %     28.2 %     95.9 / 32.2 %
    anchor only                             25.0 %    100.0 / 100  %      0.8 %     99.8 / 96.7 %
    pre-cleaning + anchor (chosen)           0.0 %    100.0 / 100  %      0.8 %     99.8 / 96.7 %
    chosen + favor_precision                 0.0 %    100.0 / 100  %      0.8 %     99.7 / 95.9 %
    chosen + favor_recall                    0.0 %    100.0 / 100  %      0.8 %     99.8 / 96.7 %
    chosen + include_tables=False            0.0 %     92.4 / 50.0 %      1.9 %     90.6 / 53.2 %
    chosen, anchor share 0.5                 0.0 %    100.0 / 100  %      0.0 %     99.8 / 96.7 %
    chosen, anchor share 0.8                 0.0 %    100.0 / 100  %      5.4 %     99.8 / 96.7 %
    chosen, anchor share 0.9                 5.0 %    100.0 / 100  %     16.2 %     99.8 / 96.7 %

* Pre-cleaning (drop elements whose tag, role, class or id token says nav, cookie/consent,
  banner, share/social, newsletter/subscribe, comments, sidebar, footer, related...; <small>
  print; hidden elements) is what removes cookie dialogs and status-page attribution lines that
  sit inside <main>, where trafilatura keeps them.
* The anchor (on pages with no <article>, <main> or role=main, mark the block that holds most of
  the readable text as <article>) is what fixes code-host and CSS-module pages: without it
  trafilatura falls back to whole-page heuristics that keep chrome and drop headings and lists.
  Its share is 0.7 although 0.5 leaked less: each step down can drop up to 1 - share of the text
  left, and on real pages that remainder may be article, not chrome.
* trafilatura's own switches make no difference once the tree is cleaned and anchored, so its
  balanced defaults stay; include_comments=False (reader comments are not the story), tables
  kept (incident timelines are tables), no deduplication (no gain; if turned on it gets a fresh
  cache per page, as trafilatura's shared one would make a page's text depend on the pages
  extracted before it), fallbacks kept (robustness on pages the bench does not have).
  htmldate's extensive search is off: it takes copyright years and dates in comments for the
  publication date; every demo HTML date is right without it.
* The remaining misses are trafilatura dropping a short closing list whose items end in links;
  the remaining leaks are forum threads with a short first post where the replies hold over 30 %
  of the text. The figures come from synthetic chrome, not from crawled pages, and the <small>
  rule was added after seeing the demo's status pages.
* PDF: pypdf's layout mode, the only one that shows the vertical gap between paragraphs; lines
  are reflowed into paragraphs, running headers and footers dropped. 100 % of sentences in both
  corpora; a heading with no gap after it stays glued to its paragraph.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import zlib
from dataclasses import dataclass

import charset_normalizer
import lxml.etree
import lxml.html
import pypdf
import pypdf.errors
import trafilatura
from trafilatura.deduplication import LRUCache
from trafilatura.xml import xmltotxt

from mlopsmortem.errors import ExtractError

# Bump whenever a setting or a rule below changes what text comes out for the same bytes, so that
# stored documents can be re-extracted; the library versions are recorded beside it.
EXTRACTOR_VERSION = "1"

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


# Share of its parent's readable text that makes a child "the" content (see mark_main_content).
ANCHOR_SHARE = 0.7


@dataclass(frozen=True)
class HtmlOptions:
    """How HTML is turned into text; the defaults are the configuration chosen by the bench."""

    preclean: bool = True  # drop page chrome by tag/class/id/role before trafilatura sees it
    anchor: bool = True  # on pages without <article>/<main>, mark the dominant block as article
    anchor_share: float = ANCHOR_SHARE
    favor_precision: bool = False
    favor_recall: bool = False
    include_tables: bool = True
    include_comments: bool = False
    deduplicate: bool = False
    no_fallback: bool = False
    # htmldate's extensive search reads dates out of free text: copyright lines, comments
    extensive_date_search: bool = False


DEFAULT_HTML_OPTIONS = HtmlOptions()


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
    if mime in PDF_TYPES or _has_pdf_magic(body):
        return _extract_pdf(body)
    if mime in HTML_TYPES or (mime in GENERIC_TYPES and _looks_like_html(body)):
        return _extract_html(body, content_type, url, options)
    if mime in TEXT_TYPES:
        return _extract_plain(body, content_type)
    return _no_text("none", _versions(), f"{mime or 'no content type'}: no text to extract")


def current_versions() -> frozenset[str]:
    """Every `extractor_version` this build writes (one per extractor)."""
    return frozenset(
        {
            _versions("trafilatura", trafilatura.__version__),
            _versions("pypdf", pypdf.__version__),
            _versions(),
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


# --------------------------------------------------------------------------- decoding

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
    """A charset label -> Python codec name (with WHATWG supersets), None if unknown."""
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    name = name.replace("-", "_")
    name = _SUPERSETS.get(name, name)
    return "utf-8" if name == "utf_8" else name


# --------------------------------------------------------------------------- HTML

# What trafilatura and lxml raise when they trip over a tree (seen: ValueError, TypeError from
# lxml on odd nodes; IndexError/KeyError from its heuristics); nothing wider.
TRAFILATURA_ERRORS = (
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    RecursionError,
    lxml.etree.LxmlError,
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
# lxml refuses str input with NUL or other C0 control characters; pages do contain them.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body|title)[\s>]", re.IGNORECASE)


def _looks_like_html(body: bytes) -> bool:
    return _HTML_START.search(body[:1024]) is not None


def parse_html(text: str) -> lxml.html.HtmlElement | None:
    """Parse decoded HTML; None for an empty document."""
    # the body is already decoded: an encoding declaration would make lxml re-decode it
    text = _CONTROL_CHARS.sub("", _XML_DECLARATION.sub("", text, count=1))
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)
    try:
        return lxml.html.document_fromstring(text, parser=parser)
    except lxml.etree.ParserError:  # "Document is empty"
        return None


def _extract_html(
    body: bytes, content_type: str | None, url: str, options: HtmlOptions
) -> Document:
    versions = _versions("trafilatura", trafilatura.__version__)
    tree = parse_html(decode_html(body, content_type))
    if tree is None:
        return _no_text("trafilatura", versions, "no main text found")
    language = _html_language(tree)
    _unwrap_cell_code(tree)
    if options.preclean:
        preclean(tree)
    if options.anchor:
        mark_main_content(tree, options.anchor_share)
    try:
        result = trafilatura.bare_extraction(tree, **_trafilatura_args(url, options))
    except TRAFILATURA_ERRORS as error:
        # not a property of the page but a library failure: surface it rather than storing a
        # "no text" document that nobody would ever re-extract
        raise ExtractError(
            f"trafilatura failed on {url}: {type(error).__name__}: {error}"
        ) from error
    text = _paragraphs_text(result.body) if result is not None else None
    if not text:
        return _no_text("trafilatura", versions, "no main text found")
    return _document(
        text,
        extractor="trafilatura",
        versions=versions,
        title=result.title,
        author=result.author,
        date=result.date,
        sitename=result.sitename,
        language=language,
    )


def _trafilatura_args(url: str, options: HtmlOptions) -> dict[str, object]:
    return dict(
        url=url or None,
        with_metadata=True,
        favor_precision=options.favor_precision,
        favor_recall=options.favor_recall,
        include_comments=options.include_comments,
        include_tables=options.include_tables,
        include_formatting=False,
        include_links=False,
        include_images=False,
        # a fresh cache per page: trafilatura's shared default cache would make the text of
        # one page depend on which pages were extracted before it
        deduplicate=LRUCache() if options.deduplicate else False,
        no_fallback=options.no_fallback,
        date_extraction_params={
            "original_date": True,  # published rather than modified
            "extensive_search": options.extensive_date_search,
        },
    )


def _unwrap_cell_code(tree: lxml.html.HtmlElement) -> None:
    """Make inline code in table cells plain text: trafilatura 2.3 renders it with a stray space
    ("( k8s-janitor)"), and incident timelines are tables full of commands."""
    for code in tree.xpath("//td//code[not(ancestor::pre)] | //th//code[not(ancestor::pre)]"):
        code.drop_tag()


# Elements of trafilatura's output tree that stand as blocks of their own; anything else at the
# top level (text, <hi>, <ref>, <lb>) is inline and joins its neighbours.
_OUTPUT_BLOCKS = frozenset({"p", "head", "list", "quote", "code", "table", "div", "graphic"})


def _paragraphs_text(body: lxml.etree._Element | None) -> str | None:
    """trafilatura's plain text, but with a blank line between blocks (paragraphs, headings,
    lists, code, tables), which its own txt output does not keep."""
    if body is None:
        return None
    blocks: list[str] = []
    inline: list[str] = [body.text or ""]
    for element in body:
        tail, element.tail = element.tail or "", None
        if element.tag in _OUTPUT_BLOCKS:
            blocks.append(_clean_lines("".join(inline)))
            blocks.append(_clean_lines(xmltotxt(element, include_formatting=False)))
            inline = [tail]
        else:
            inline += ["\n" if element.tag == "lb" else "".join(element.itertext()), tail]
    blocks.append(_clean_lines("".join(inline)))
    return "\n\n".join(block for block in blocks if block) or None


def _clean_lines(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line.strip()).strip("\n")


def _html_language(tree: lxml.html.HtmlElement) -> str | None:
    for value in (
        tree.get("lang"),
        tree.get("{http://www.w3.org/XML/1998/namespace}lang"),
        *tree.xpath(
            "//meta[translate(@http-equiv,'CONTENT-LAGU','content-lagu')"
            "='content-language']/@content"
        ),
        *tree.xpath("//meta[@property='og:locale']/@content"),
    ):
        language = _language_code(value)
        if language:
            return language
    return None


def _language_code(value: object) -> str | None:
    """'en-US' / 'en_GB' / 'EN' -> 'en'; anything that is not a language tag -> None."""
    if not isinstance(value, str):
        return None
    match = re.match(r"^\s*([a-zA-Z]{2,3})(?:[-_][a-zA-Z0-9]+)*\s*$", value)
    return match.group(1).lower() if match else None


# --------------------------------------------------------------------------- pre-cleaning

# Words that, as a whole token of an element's class or id, mark page chrome. Tokens are split on
# non-letters and camelCase, so "cookie-banner", "siteFooter" and "share_buttons" all match while
# "navigator" or "canvas" do not.
CHROME_TOKENS = frozenset(
    {
        "nav",
        "navbar",
        "navigation",
        "menu",
        "breadcrumb",
        "breadcrumbs",
        "sidebar",
        "footer",
        "cookie",
        "cookies",
        "consent",
        "gdpr",
        "banner",
        "share",
        "sharing",
        "social",
        "newsletter",
        "subscribe",
        "subscription",
        "comment",
        "comments",
        "related",
        "recommended",
        "promo",
        "advert",
        "advertisement",
        "masthead",
    }
)
CHROME_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "dialog", "alertdialog", "search"}
)
# Removed wherever they are: never article text.
# <small> is HTML's "small print": attribution lines, timestamps, legal text.
CHROME_TAGS = frozenset(
    {"nav", "form", "button", "dialog", "template", "noscript", "select", "small"}
)
# Removed unless inside the article: an <aside> or <footer> within it is usually a note or the
# byline, outside it the sidebar and the site footer.
OUTER_CHROME_TAGS = frozenset({"aside", "footer", "header"})
CONTENT_TAGS = frozenset({"html", "body", "main", "article"})
_TOKEN_SPLIT = re.compile(r"[^a-zA-Z]+|(?<=[a-z])(?=[A-Z])")
# A candidate holding more than this share of the page's text is the content, whatever its name.
MAX_CHROME_SHARE = 0.5


def preclean(tree: lxml.html.HtmlElement) -> int:
    """Remove page chrome (navigation, cookie banners, share bars, comments, sidebars, footers,
    related links, hidden elements) in place; returns how many elements were removed."""
    sizes = _readable_sizes(tree)
    total = sizes.get(tree, 0) or 1
    removed = 0
    stack = list(tree)
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        if _is_chrome(element) and not _guards_content(element, sizes.get(element, 0) / total):
            element.drop_tree()  # keeps its tail text; its subtree is not visited
            removed += 1
        else:
            stack.extend(reversed(element))
    return removed


def _is_chrome(element: lxml.html.HtmlElement) -> bool:
    tag = element.tag.lower()
    if tag in CONTENT_TAGS or tag in ("pre", "code"):
        return False
    if any(parent.tag in ("pre", "code") for parent in element.iterancestors()):
        # syntax highlighters name their spans "token comment", "hljs-comment", "nav"...
        return False
    if tag in CHROME_TAGS:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    if re.search(r"display\s*:\s*none", element.get("style") or "", re.IGNORECASE):
        return True
    if (element.get("role") or "").strip().lower() in CHROME_ROLES:
        return True
    if tag in OUTER_CHROME_TAGS and not _inside_content(element):
        return True
    names = f"{element.get('class') or ''} {element.get('id') or ''}"
    tokens = {token.lower() for token in _TOKEN_SPLIT.split(names) if token}
    return not tokens.isdisjoint(CHROME_TOKENS)


def _inside_content(element: lxml.html.HtmlElement) -> bool:
    return any(parent.tag in ("main", "article") for parent in element.iterancestors())


def _guards_content(element: lxml.html.HtmlElement, share: float) -> bool:
    """True when removing the element would remove the article itself; `share` is the element's
    part of the page's readable text."""
    if element.find(".//article") is not None or element.find(".//main") is not None:
        return True
    if element.find(".//h1") is not None and not _inside_content(element):
        # a wrapper with the page's heading; a <header> inside the article is kept anyway
        return element.tag not in ("nav", "footer")
    return share > MAX_CHROME_SHARE


# --------------------------------------------------------------------------- main content anchor

# trafilatura finds the article through <article>, <main> and class names like "post-content";
# on pages with none of them (CSS-module class names, forum software, code hosts) it falls back
# to whole-page heuristics that keep chrome and drop headings and lists.
SEMANTIC_MAIN = "//article|//main|//*[@role='main']|//*[@itemprop='articleBody']"
# Below this much readable text the page is too small for the share to mean anything.
MIN_ANCHOR_CHARS = 500
_NOT_TEXT = frozenset({"script", "style", "noscript", "template", "head"})
# The walk goes through layout elements only (old table layouts included) and stops at blocks
# of text such as <p>, <pre>, <ul>; it marks the deepest generic container it passed.
_DESCEND_TAGS = frozenset({"div", "section", "td", "span", "center", "table", "tbody", "tr"})
_MARKABLE_TAGS = frozenset({"div", "section", "td", "span", "center"})


def mark_main_content(
    tree: lxml.html.HtmlElement, share: float = ANCHOR_SHARE
) -> lxml.html.HtmlElement | None:
    """If the page has no semantic main element, walk down from <body> while one child holds at
    least `share` of its parent's readable (non-link) text, and rename the deepest container
    reached to <article> so trafilatura starts there. Returns the element marked, or None.

    Each step can discard at most 1 - `share` of the text left, which is why the default is not
    lower although 0.5 leaked less in the bench (see the module docstring)."""
    if tree.xpath(SEMANTIC_MAIN):
        return None
    bodies = tree.xpath("//body")
    if not bodies:
        return None
    sizes = _readable_sizes(bodies[0])
    node = bodies[0]
    if sizes.get(node, 0) < MIN_ANCHOR_CHARS:
        return None
    marked = None
    while True:
        children = [child for child in node if child.tag in _DESCEND_TAGS]
        if not children:
            break
        best = max(children, key=lambda child: sizes.get(child, 0))
        if sizes.get(best, 0) < share * sizes.get(node, 0):
            break
        node = best
        if node.tag in _MARKABLE_TAGS:
            marked = node
    if marked is not None:
        marked.tag = "article"
    return marked


def _readable_sizes(root: lxml.html.HtmlElement) -> dict[lxml.html.HtmlElement, int]:
    """Characters of text outside links, scripts and styles, per element, bottom-up."""
    sizes: dict[lxml.html.HtmlElement, int] = {}

    def walk(element: lxml.html.HtmlElement) -> int:
        if not isinstance(element.tag, str) or element.tag in _NOT_TEXT:
            return 0
        size = len((element.text or "").strip())
        for child in element:
            size += walk(child) + len((child.tail or "").strip())
        sizes[element] = size
        # link text does not count towards the elements around the link
        return 0 if element.tag == "a" else size

    walk(root)
    return sizes


# --------------------------------------------------------------------------- PDF

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


def _has_pdf_magic(body: bytes) -> bool:
    return _PDF_MAGIC.match(body[:64]) is not None


def _extract_pdf(body: bytes) -> Document:
    versions = _versions("pypdf", pypdf.__version__)
    try:
        # pypdf already opens files encrypted with an empty user password (owner-only DRM)
        reader = pypdf.PdfReader(io.BytesIO(body))
        page_objects = list(reader.pages)
    except pypdf.errors.FileNotDecryptedError:
        return _no_text("pypdf", versions, "pdf is encrypted")
    except pypdf.errors.DependencyError:
        return _no_text("pypdf", versions, AES_REASON)
    except PDF_ERRORS as error:
        return _no_text("pypdf", versions, f"pdf could not be read: {type(error).__name__}")
    pages, failed = [], None
    for page in page_objects:
        # one broken page (bad font, corrupt stream) costs that page, not the document
        try:
            pages.append(_pdf_page_lines(page))
        except pypdf.errors.FileNotDecryptedError:
            return _no_text("pypdf", versions, "pdf is encrypted")
        except pypdf.errors.DependencyError:
            return _no_text("pypdf", versions, AES_REASON)
        except PDF_ERRORS as error:
            failed = failed or error
    text = _pdf_text(pages)
    if not text and failed is not None:
        reason = f"pdf could not be read: {type(failed).__name__}"
        return _no_text("pypdf", versions, reason)
    if not text:
        return _no_text("pypdf", versions, "pdf has no text layer")
    title, author, date, language = _pdf_metadata(reader)
    return _document(
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
    raw = _CONTROL_CHARS.sub("", raw)
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
        title = _clean_field(info.title) if info else None
        author = _clean_field(info.author) if info else None
    except PDF_ERRORS:
        info = title = author = None
    try:
        created = info.creation_date if info else None
        date = created.date().isoformat() if created else None
    except PDF_ERRORS:
        date = None
    try:
        language = _language_code(reader.trailer["/Root"].get("/Lang"))
    except PDF_ERRORS:
        language = None
    return title, author, date, language


def _clean_field(value: object) -> str | None:
    """One line of metadata; bylines leave separators behind ('Orbitra · ·')."""
    if not isinstance(value, str):
        return None
    return " ".join(_CONTROL_CHARS.sub("", value).split()).strip(" ·|•,;:/–—-") or None


# --------------------------------------------------------------------------- plain text


def _extract_plain(body: bytes, content_type: str | None) -> Document:
    versions = _versions()
    # line endings are normalised so the hash does not depend on how the server stored the file
    text = decode_text(body, content_type).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return _no_text("plain", versions, "empty text")
    return _document(
        text,
        extractor="plain",
        versions=versions,
        title=None,
        author=None,
        date=None,
        sitename=None,
        language=None,
    )


# --------------------------------------------------------------------------- helpers


def _versions(library: str | None = None, version: str | None = None) -> str:
    own = f"mlopsmortem-extract {EXTRACTOR_VERSION}"
    return f"{library} {version}; {own}" if library else own


def _document(
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
        title=_clean_field(title),
        author=_clean_field(author),
        date=date,
        sitename=_clean_field(sitename),
        language=language,
        word_count=len(text.split()),
        text_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        extractor=extractor,
        extractor_version=versions,
        no_text_reason=None,
    )


def _no_text(extractor: str, versions: str, reason: str) -> Document:
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
