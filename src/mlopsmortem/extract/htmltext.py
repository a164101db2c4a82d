"""HTML -> text: decode, parse, drop page chrome, mark the main content, then trafilatura.

Two steps run before trafilatura sees the tree, because its own switches cannot remove chrome
that sits inside <main> or find the article on pages without semantic markup:

* pre-cleaning (`preclean`) drops elements whose tag, role, class or id token says navigation,
  cookie/consent, banner, share, newsletter, comments, sidebar, footer, related, plus <small>
  print and hidden elements; an element that holds the article itself is never dropped;
* the anchor (`mark_main_content`) renames the block holding most of the readable text to
  <article> on pages that have no <article>, <main> or role=main.

trafilatura then runs with its balanced defaults, without comments, with tables (incident
timelines are tables), without deduplication and with htmldate's extensive search off (it takes
copyright years for publication dates). The output is deterministic per page: nothing depends
on the pages extracted before it, except on a page that exhausts the time budget.

Time budget: cleaning, anchoring and trafilatura together get `HtmlOptions.time_budget`
seconds (20 by default; some page shapes make trafilatura superlinear). Past it, the page is
parsed again and its text is the cheaper, linear block extraction (`block_text`: the text of
its <article>, <main> or <body>, one block per paragraph-level element, scripts and styles
skipped, no chrome removal), recorded as extractor "blocks". docs/crawling.md has the bench
figures behind these choices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.deduplication import LRUCache
from trafilatura.xml import xmltotxt

from mlopsmortem.errors import ExtractError
from mlopsmortem.extract.budget import OutOfTime, time_budget
from mlopsmortem.extract.charsets import decode_html
from mlopsmortem.extract.document import (
    CONTROL_CHARS,
    Document,
    extractor_versions,
    language_code,
    make_document,
    no_text,
)

# Share of its parent's readable text that makes a child "the" content (see mark_main_content).
ANCHOR_SHARE = 0.7
# Seconds one page's cleaning and trafilatura may take before the block extraction replaces
# them. A normal page takes well under a second; a 1.9 MB page of 100k blocks about 8 s.
TIME_BUDGET = 20.0


@dataclass(frozen=True)
class HtmlOptions:
    """How HTML is turned into text; the defaults are the configuration used in production."""

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
    time_budget: float = TIME_BUDGET  # seconds, then the block extraction (module docstring)


DEFAULT_HTML_OPTIONS = HtmlOptions()


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
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body|title)[\s>]", re.IGNORECASE)


def looks_like_html(body: bytes) -> bool:
    return _HTML_START.search(body[:1024]) is not None


def parse_html(text: str) -> lxml.html.HtmlElement | None:
    """Parse decoded HTML; None for an empty document."""
    # the body is already decoded: an encoding declaration would make lxml re-decode it
    text = CONTROL_CHARS.sub("", _XML_DECLARATION.sub("", text, count=1))
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)
    try:
        return lxml.html.document_fromstring(text, parser=parser)
    except lxml.etree.ParserError:  # "Document is empty"
        return None


def extract_html(body: bytes, content_type: str | None, url: str, options: HtmlOptions) -> Document:
    versions = extractor_versions("trafilatura", trafilatura.__version__)
    html = decode_html(body, content_type)
    tree = parse_html(html)
    if tree is None:
        return no_text("trafilatura", versions, "no main text found")
    language = _html_language(tree)
    timed_out = False
    try:
        with time_budget(options.time_budget):
            result = _clean_and_extract(tree, url, options)
    except OutOfTime:
        timed_out, result = True, None
    except TRAFILATURA_ERRORS as error:
        # not a property of the page but a library failure: surface it rather than storing a
        # "no text" document that nobody would ever re-extract
        raise ExtractError(
            f"trafilatura failed on {url}: {type(error).__name__}: {error}"
        ) from error
    if timed_out:
        # a fresh tree: the interrupted steps may have left this one half-pruned
        del tree
        fresh = parse_html(html)
        if fresh is None:  # unreachable: the same text parsed a moment ago
            return no_text("blocks", versions, "no main text found")
        return _block_document(fresh, language)
    text = _paragraphs_text(result.body) if result is not None else None
    if not text:
        return no_text("trafilatura", versions, "no main text found")
    return make_document(
        text,
        extractor="trafilatura",
        versions=versions,
        title=result.title,
        author=result.author,
        date=result.date,
        sitename=result.sitename,
        language=language,
    )


def _clean_and_extract(
    tree: lxml.html.HtmlElement, url: str, options: HtmlOptions
) -> trafilatura.settings.Document | None:
    _unwrap_cell_code(tree)
    if options.preclean:
        preclean(tree)
    if options.anchor:
        mark_main_content(tree, options.anchor_share)
    return trafilatura.bare_extraction(tree, **_trafilatura_args(url, options))


# Elements whose text is a block of its own in `block_text`.
_TEXT_BLOCKS = frozenset(
    "p div li h1 h2 h3 h4 h5 h6 pre blockquote tr dt dd section article main header "
    "figcaption table ul ol dl".split()
)
_NO_TEXT = frozenset({"script", "style", "template", "noscript", "svg", "head"})


def block_text(tree: lxml.html.HtmlElement) -> str | None:
    """Linear fallback: the article (else main, else body) as blocks, a blank line apart."""
    root = next(iter(tree.xpath("//article | //main | //body")), tree)
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = " ".join("".join(current).split())
        if text:
            blocks.append(text)
        current.clear()

    skipping = 0
    for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _NO_TEXT:
                skipping += 1
            elif not skipping:
                if tag in _TEXT_BLOCKS:
                    flush()
                current.append(element.text or "")
            continue
        if tag in _NO_TEXT:
            skipping -= 1
        elif tag in _TEXT_BLOCKS and not skipping:
            flush()
        elif tag == "br" and not skipping:
            current.append(" ")
        if not skipping and element is not root:
            current.append(element.tail or "")
    flush()
    return "\n\n".join(blocks) or None


def _block_document(tree: lxml.html.HtmlElement, language: str | None) -> Document:
    versions = extractor_versions("trafilatura", trafilatura.__version__)
    text = block_text(tree)
    if not text:
        return no_text("blocks", versions, "no main text found (time budget spent)")
    return make_document(
        text,
        extractor="blocks",
        versions=versions,
        title=tree.findtext(".//title"),
        author=None,
        date=None,
        sitename=None,
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
        language = language_code(value)
        if language:
            return language
    return None


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
    lower: on real pages that remainder may be article rather than chrome."""
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
