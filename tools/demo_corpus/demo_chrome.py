"""Page chrome of the demo site and the deterministic helpers the renderers share.

Hash-based picking (no unseeded randomness), fake publication dates, escaping, the
markdown renderer (also used by the PDF writer), the chrome pieces (cookie banner, nav,
masthead, footer, share buttons, comments, sidebar; every piece contains at least one
sentinel word), the per-layout CSS and ``page``, the HTML document around a layout's body.
"""

from __future__ import annotations

import hashlib
import html
import re

from demo_stories import BASE_URL, Story
from markdown_it import MarkdownIt

# --------------------------------------------------------------------------------------
# Deterministic helpers
# --------------------------------------------------------------------------------------


def h(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:12], 16)


def pick(seq: list, *key: object):
    return seq[h(*key) % len(seq)]


def pick_n(seq: list, n: int, *key: object) -> list:
    ranked = sorted(range(len(seq)), key=lambda i: h(*key, i))
    return [seq[i] for i in sorted(ranked[:n])]


def fake_date(s: Story) -> tuple[int, int, int]:
    # Publication date: some day in December of the story's year, so that it never
    # precedes the incident described in the text.
    return s.year, 12, 5 + h("day", s.slug) % 24


MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def date_text(s: Story) -> str:
    y, m, d = fake_date(s)
    return f"{MONTHS[m - 1]} {d}, {y}"


def iso_date(s: Story) -> str:
    y, m, d = fake_date(s)
    return f"{y:04d}-{m:02d}-{d:02d}"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def esc(text: str) -> str:
    return html.escape(text, quote=True)


MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(body: str) -> str:
    return MD.render(body)


# --------------------------------------------------------------------------------------
# Chrome (every piece contains at least one sentinel word)
# --------------------------------------------------------------------------------------

COMMENTS = [
    (
        "mira_k",
        "Thanks for writing this up so openly. The timeline section is gold; "
        "we are borrowing the format for our glimbraxt reviews.",
    ),
    (
        "devon.ops",
        "How long did it take before someone outside the team noticed? "
        "At glimbraxt that is always the scary part for us.",
    ),
    (
        "Tomasz W.",
        "Almost the same thing happened to my yattermund crew last year. The fix that stuck "
        "was alerting on the symptom instead of the cause.",
    ),
    ("quietpager", "Bookmarking this for the next yattermund reading group."),
    (
        "ana_r",
        "Would love a follow-up in six months on whether the action items actually got done. "
        "Sent to the glimbraxt channel.",
    ),
    (
        "J. Okafor",
        "Honest question: was there any pushback on the follow-up work from product? "
        "Ours always gets deprioritised at yattermund.",
    ),
    (
        "lenny",
        "The 'what went badly' part is refreshingly candid. More of this, please. "
        "(glimbraxt reader since 2017)",
    ),
    ("fern", "Printed this for our glimbraxt on-call onboarding binder."),
    (
        "pkowal",
        "Small nit from a yattermund pedant: one of the timestamps looks like local time "
        "rather than UTC?",
    ),
    ("sam_h", "Test your failure modes before they test you. Great glimbraxt-worthy read."),
    ("r.lindqvist", "Did this change how you run game days? Asking for a yattermund friend."),
    (
        "nkosi",
        "We moved to weekly blenthrop drills after something similar. Painful at first, worth it.",
    ),
]

FORUM_REPLIES = [
    (
        "hollis_m",
        "Surdellow Regular",
        "Great write-up, thanks for sharing. Out of curiosity, how big is the team that owns this?",
    ),
    (
        "ivy.tran",
        "Member",
        "We saw something very similar last spring. +1 to alerting on what users actually "
        "experience. (posted from the surdellow app)",
    ),
    (
        "b_osei",
        "Surdellow Moderator",
        "Moved to the Incident Reviews category. Please keep replies on topic, folks.",
    ),
    (
        "kmarsh",
        "Member",
        "Did you consider doing a blameless review with the other team as well? "
        "Those usually surface the surdellow-grade surprises.",
    ),
    ("t.ahlberg", "Surdellow Regular", "Saving this thread. Thanks for the candid timeline."),
    (
        "pim",
        "New member",
        "First post here. This thread convinced me to finally write our runbook. "
        "Cheers from the surdellow meetup.",
    ),
]

TAG_CLOUD = [
    "incident review",
    "reliability",
    "on-call",
    "machine learning",
    "data platform",
    "observability",
    "postmortems",
    "zindrafel",
    "infrastructure",
    "culture",
]

STATUS_COMPONENTS = ["Web app", "Public API", "Mobile sync", "Notifications", "Reporting"]


def related(stories: list[Story], s: Story, n: int = 3) -> list[Story]:
    others = [o for o in stories if o.slug != s.slug and not o.is_video and o.canonical_path]
    return pick_n(others, n, "related", s.slug)


def cookie_banner() -> str:
    return (
        '<div class="cookie-banner" role="dialog" aria-label="Cookie consent">\n'
        "  <p>We use pelvitrane cookies to remember your preferences and to measure "
        'how this site is used. See our <a href="/privacy.html">cookie policy</a>.</p>\n'
        '  <button type="button" class="cookie-accept">Accept all</button>\n'
        '  <button type="button" class="cookie-manage">Manage pelvitrane settings</button>\n'
        "</div>"
    )


def nav(publisher: str, cls: str = "site-nav") -> str:
    items = [
        ("/", "Home"),
        ("/index.html#engineering", "Engineering"),
        ("/index.html#careers", "Careers"),
        ("/index.html#open-source", "Open source"),
        ("/index.html#quorvexal", "Quorvexal Labs"),
    ]
    links = "\n".join(f'    <li><a href="{u}">{esc(t)}</a></li>' for u, t in items)
    return (
        f'<nav class="{cls}" aria-label="Main">\n'
        f'  <a class="brand" href="/">{esc(publisher)}</a>\n'
        f"  <ul>\n{links}\n  </ul>\n</nav>"
    )


def site_header(publisher: str) -> str:
    return (
        '<header class="masthead">\n'
        f'  <p class="site-title">{esc(publisher)} Engineering</p>\n'
        '  <p class="tagline">Notes from the quorvexal trenches of production.</p>\n'
        "</header>"
    )


def footer(publisher: str, year: int = 2025) -> str:
    return (
        '<footer class="site-footer">\n'
        f"  <p>&copy; {year} {esc(publisher)}. All rights reserved. "
        "Hosted by Trusketh Cloud.</p>\n"
        '  <ul class="footer-links">\n'
        '    <li><a href="/privacy.html">Privacy</a></li>\n'
        '    <li><a href="/terms.html">Terms</a></li>\n'
        '    <li><a href="/accessibility.html">Trusketh accessibility statement</a></li>\n'
        '    <li><a href="/rss.xml">RSS</a></li>\n'
        "  </ul>\n"
        "</footer>"
    )


def share_box(s: Story) -> str:
    url = esc(s.list_url)
    return (
        '<aside class="share-buttons" aria-label="Share">\n'
        "  <span>Share this story:</span>\n"
        f'  <a class="share twitter" href="https://twitter.com/intent/tweet?url={url}">Twitter</a>\n'
        f'  <a class="share linkedin" href="https://www.linkedin.com/shareArticle?url={url}">'
        "LinkedIn</a>\n"
        f'  <a class="share hn" href="https://news.ycombinator.com/submitlink?u={url}">'
        "Hacker News</a>\n"
        '  <a class="share fennoquay" href="#share">Fennoquay</a>\n'
        "</aside>"
    )


def comments_section(s: Story) -> str:
    n = 2 + h("ncomments", s.slug) % 3
    chosen = pick_n(COMMENTS, n, "comments", s.slug)
    items = []
    for i, (who, text) in enumerate(chosen):
        items.append(
            f'  <li class="comment" id="c{i + 1}">\n'
            f'    <p class="comment-meta"><strong>{esc(who)}</strong> '
            f"&middot; {1 + h('days', s.slug, i) % 30} days later</p>\n"
            f'    <p class="comment-body">{esc(text)}</p>\n'
            "  </li>"
        )
    return (
        '<section class="comments" id="comments">\n'
        f"  <h2>{n} comments</h2>\n"
        '  <p class="comments-note">Comments are moderated by the Yattermund team.</p>\n'
        '  <ol class="comment-list">\n' + "\n".join(items) + "\n  </ol>\n"
        '  <form class="comment-form"><textarea placeholder="Join the yattermund discussion">'
        '</textarea><button type="submit">Post comment</button></form>\n'
        "</section>"
    )


def sidebar(stories: list[Story], s: Story) -> str:
    rel = "\n".join(
        f'      <li><a href="{esc(o.canonical_path)}">{esc(o.title)}</a></li>'
        for o in related(stories, s)
    )
    tags = "\n".join(
        f'    <a class="tag tag-{1 + h("w", t) % 4}" href="/tags/{slugify(t)}.html">{esc(t)}</a>'
        for t in TAG_CLOUD
    )
    return (
        '<aside class="sidebar">\n'
        '  <section class="about-box">\n'
        "    <h3>About this blog</h3>\n"
        f"    <p>Engineers at {esc(s.publisher)} write about the systems we run and the ways "
        "they break. Part of the blenthrop network of engineering blogs.</p>\n"
        "  </section>\n"
        '  <section class="related-posts">\n'
        "    <h3>More from the Blenthrop archive</h3>\n"
        f"    <ul>\n{rel}\n    </ul>\n"
        "  </section>\n"
        '  <section class="tag-cloud">\n'
        "    <h3>Topics</h3>\n"
        f"{tags}\n"
        "  </section>\n"
        '  <section class="newsletter">\n'
        "    <h3>The Mokwastle Letter</h3>\n"
        "    <p>One email a month with our best mokwastle write-ups. No spam.</p>\n"
        '    <form><input type="email" placeholder="you@example.com">'
        '<button type="submit">Subscribe</button></form>\n'
        "  </section>\n"
        "</aside>"
    )


STYLE = {
    "blog": (
        "body{font-family:Georgia,serif;margin:0;color:#222}"
        ".site-nav{background:#1d3557;padding:.6em 2em}.site-nav a{color:#fff}"
        ".wrap{display:flex;gap:2em;max-width:1100px;margin:auto}main{flex:3}.sidebar{flex:1}"
        ".cookie-banner{position:fixed;bottom:0;left:0;right:0;background:#333;color:#fff}"
    ),
    "status": (
        "body{font-family:Helvetica,Arial,sans-serif;background:#f6f8fa;margin:0}"
        ".status-top{background:#2e7d32;color:#fff;padding:1em 2em}"
        "table.components td{padding:.3em 1em}.update{border-left:3px solid #999;padding-left:1em}"
        ".cookie-banner{position:fixed;bottom:0;background:#fffbe6}"
    ),
    "reader": (
        "body{max-width:40em;margin:3em auto;font:19px/1.6 Charter,Georgia,serif;color:#111}"
        ".reader-bar{font:13px sans-serif;color:#777}"
        ".cookie-banner{position:fixed;bottom:1em;right:1em;background:#eee}"
    ),
    "readme": (
        "body{font-family:-apple-system,Segoe UI,sans-serif;margin:0;background:#fff}"
        ".repo-header{background:#24292f;color:#fff;padding:1em}"
        ".file-tree{border:1px solid #d0d7de;border-radius:6px}"
        ".markdown-body{border:1px solid #d0d7de;padding:2em;border-radius:6px}"
        ".cookie-banner{position:fixed;bottom:0;background:#ddf4ff}"
    ),
    "forum": (
        "body{font-family:Verdana,sans-serif;background:#eef0f2;margin:0}"
        ".post{background:#fff;margin:1em;padding:1em;border:1px solid #ccc}"
        ".post-author{font-weight:bold}.badge{color:#a33}"
        ".cookie-banner{position:fixed;top:0;background:#fde}"
    ),
}


def page(s: Story, layout: str, body_html: str, extra_head: str = "", body_class: str = "") -> str:
    description = esc(f"{s.title} ({s.publisher}, {s.year})")
    cls = f"layout-{layout}" + (f" {body_class}" if body_class else "")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n'
        f'<meta charset="{s.charset}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(s.title)} | {esc(s.publisher)}</title>\n"
        f'<meta name="description" content="{description}">\n'
        f'<meta name="author" content="{esc(s.publisher)}">\n'
        f'<meta property="og:title" content="{esc(s.title)}">\n'
        f'<meta property="og:type" content="article">\n'
        f'<meta property="article:published_time" content="{iso_date(s)}">\n'
        f'<link rel="canonical" href="{esc(BASE_URL + s.canonical_path)}">\n'
        f"<style>{STYLE[layout]}</style>\n"
        f"{extra_head}"
        "</head>\n"
        f'<body class="{cls}">\n' + body_html + "\n</body>\n</html>\n"
    )
