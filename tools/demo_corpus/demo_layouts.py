"""HTML layouts of the demo site: one renderer per story layout, plus the site-level pages.

``RENDERERS`` maps a layout (blog, status, reader, readme, forum) to the function that
renders a story's page in that look; ``wayback_wrap`` turns a blog page into an archived
snapshot; ``simple_page``, ``index_page``, ``BADGE_SVG`` and ``ROBOTS`` are the pages and
files that are not stories.
"""

from __future__ import annotations

from demo_chrome import (
    FORUM_REPLIES,
    MONTHS,
    STATUS_COMPONENTS,
    comments_section,
    cookie_banner,
    date_text,
    esc,
    fake_date,
    footer,
    h,
    iso_date,
    nav,
    page,
    pick_n,
    related,
    render_markdown,
    share_box,
    sidebar,
    site_header,
    slugify,
)
from demo_stories import BASE_URL, DEAD_NO_SNAPSHOT_SLUG, DEAD_WITH_SNAPSHOT_SLUG, Story

# --------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------


def render_blog(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    minutes = max(2, s.words // 220)
    body = "\n".join(
        [
            cookie_banner(),
            nav(s.publisher),
            site_header(s.publisher),
            '<div class="wrap">',
            "<main>",
            '<article class="post">',
            '<header class="post-header">',
            f"<h1>{esc(s.title)}</h1>",
            f'<p class="byline">{esc(s.publisher)} &middot; <time datetime="{iso_date(s)}">'
            f"{date_text(s)}</time> &middot; {minutes} min read &middot; {esc(s.kind)}</p>",
            "</header>",
            '<div class="post-content">',
            content,
            "</div>",
            "</article>",
            share_box(s),
            comments_section(s),
            "</main>",
            sidebar(stories, s),
            "</div>",
            footer(s.publisher, s.year),
        ]
    )
    return page(s, "blog", body)


def status_updates(s: Story) -> str:
    y, m, d = fake_date(s)
    base = 8 * 60 + h("hour", s.slug) % (10 * 60)
    steps = [
        ("Resolved", "This incident has been resolved. The postmortem is published below."),
        ("Monitoring", "A fix has been implemented and we are monitoring the results."),
        ("Identified", "The issue has been identified and a fix is being implemented."),
        ("Investigating", "We are currently investigating this issue."),
    ]
    offsets = [200 + h("o", s.slug) % 300, 120, 45, 0]
    items = []
    for (label, text), off in zip(steps, offsets, strict=True):
        t = base + off
        items.append(
            f'    <li class="update update-{label.lower()}">\n'
            f"      <strong>{label}</strong> &mdash; {text}\n"
            f"      <small>{MONTHS[m - 1][:3]} {d}, {y} &middot; "
            f"{t // 60 % 24:02d}:{t % 60:02d} UTC"
            " &middot; posted via Crivabole</small>\n"
            "    </li>"
        )
    return (
        '  <section class="incident-updates">\n'
        "    <h2>Updates</h2>\n"
        '    <ol class="updates">\n' + "\n".join(items) + "\n    </ol>\n  </section>"
    )


def status_components(s: Story) -> str:
    rows = "\n".join(
        f'      <tr><td>{esc(c)}</td><td class="ok">Operational</td>'
        f"<td>{99 + (h('up', s.slug, c) % 100) / 100:.2f}% uptime</td></tr>"
        for c in STATUS_COMPONENTS
    )
    return (
        '<div class="component-status">\n'
        '  <table class="components">\n'
        "    <caption>Current status (Crivabole monitors)</caption>\n"
        "    <tbody>\n" + rows + "\n    </tbody>\n  </table>\n</div>"
    )


def render_status(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    body = "\n".join(
        [
            cookie_banner(),
            '<header class="status-top">',
            f'  <a class="status-brand" href="/status/">{esc(s.publisher)} Status</a>',
            '  <a class="subscribe" href="#subscribe">Subscribe to updates via Crivabole</a>',
            "</header>",
            nav(s.publisher, "status-nav"),
            status_components(s),
            '<main class="incident">',
            f"  <h1>{esc(s.title)}</h1>",
            f'  <p class="incident-meta">Incident report &middot; {date_text(s)} &middot; '
            "Affected: Public API</p>",
            status_updates(s),
            '  <section class="postmortem">',
            "    <h2>Postmortem</h2>",
            content,
            "  </section>",
            "</main>",
            '<div class="status-footer">',
            '  <p><a href="/status/history.html">Incident history</a> &middot; '
            "Powered by Crivabole Statuspage &middot; "
            '<a href="/status/rss.xml">RSS</a></p>',
            "</div>",
            footer(s.publisher, s.year),
        ]
    )
    return page(s, "status", body)


def render_reader(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    body = "\n".join(
        [
            cookie_banner(),
            '<header class="reader-bar">',
            '  <a href="/">&larr; Back to the quorvexal reading list</a> &middot; '
            f"{max(2, s.words // 220)} min read",
            "</header>",
            '<article class="reader-article">',
            f"<h1>{esc(s.title)}</h1>",
            f'<p class="reader-source">{esc(s.publisher)} &middot; {esc(s.kind)} &middot; '
            f"{date_text(s)}</p>",
            content,
            "</article>",
            '<footer class="reader-footer">',
            "  <p>Reader view provided by Trusketh Reader. "
            '<a href="/reader/settings.html">Text settings</a></p>',
            "</footer>",
        ]
    )
    return page(s, "reader", body)


def repo_name(s: Story) -> str:
    return f"{slugify(s.publisher)}/incident-reviews"


def render_readme(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    repo = repo_name(s)
    y, m, d = fake_date(s)
    tree_rows = [
        (".github/workflows", "dir", "ci: run obliwand lint on pull requests"),
        ("incidents", "dir", f"Add {y}-{m:02d} review"),
        ("templates", "dir", "Template: add action item table"),
        ("CONTRIBUTING.md", "file", "Docs: how to propose a review"),
        ("README.md", "file", f"Publish {s.slug} review"),
        ("obliwand.toml", "file", "Bump obliwand to 2.3"),
    ]
    rows = "\n".join(
        f'    <div class="tree-row {kind}"><span class="name">{esc(name)}</span>'
        f'<span class="msg">{esc(msg)}</span><span class="age">{1 + h(name, s.slug) % 11} '
        "months ago</span></div>"
        for name, kind, msg in tree_rows
    )
    body = "\n".join(
        [
            cookie_banner(),
            '<div class="repo-header">',
            '  <div class="topbar"><span class="logo">obliwand</span> '
            '<input class="search" placeholder="Search or jump to..."></div>',
            f'  <div class="repo-title"><a href="#">{esc(repo.split("/")[0])}</a> / '
            f"<strong>{esc(repo.split('/')[1])}</strong> "
            '<span class="visibility">Public</span></div>',
            '  <div class="repo-actions"><button>Watch 12</button><button>Fork 3</button>'
            f"<button>Star {20 + h('stars', s.slug) % 300}</button></div>",
            '  <div class="repo-tabs"><a class="selected" href="#">Code</a> '
            '<a href="#">Issues 4</a> '
            '<a href="#">Pull requests 1</a> <a href="#">Actions</a> <a href="#">Wiki</a> '
            '<a href="#">Obliwand insights</a></div>',
            "</div>",
            '<div class="repo-body">',
            '  <div class="branch-bar"><span class="branch">main</span> '
            f"<span>{20 + h('commits', s.slug) % 180} commits</span> "
            '<span class="clone">Clone with obliwand CLI</span></div>',
            '  <div class="file-tree">',
            rows,
            "  </div>",
            '  <div class="repo-about">',
            "    <h2>About</h2>",
            f"    <p>Public incident reviews from the {esc(s.publisher)} platform team. "
            "Mirrored to obliwand pages.</p>",
            "  </div>",
            '  <div class="readme-box">',
            '    <div class="readme-title">README.md &middot; rendered by obliwand</div>',
            '    <div class="markdown-body" id="readme">',
            f"<h1>{esc(s.title)}</h1>",
            content,
            "    </div>",
            "  </div>",
            "</div>",
            '<div class="repo-footer">',
            "  <p>&copy; 2025 Obliwand, Inc. &middot; Terms &middot; Privacy &middot; Status "
            "&middot; Docs</p>",
            "</div>",
        ]
    )
    return page(s, "readme", body)


def render_forum(stories: list[Story], s: Story) -> str:
    content = render_markdown(s.body)
    author = slugify(s.publisher).replace("-", "_") + "_eng"
    n = 2 + h("nreplies", s.slug) % 3
    replies = []
    for i, (who, badge, text) in enumerate(pick_n(FORUM_REPLIES, n, "forum", s.slug)):
        replies.append(
            f'<div class="post reply" id="post-{i + 2}">\n'
            f'  <div class="post-author">{esc(who)} <span class="badge">{esc(badge)}</span></div>\n'
            f'  <div class="post-body"><p>{esc(text)}</p></div>\n'
            f'  <div class="post-actions">Like &middot; Reply &middot; #{i + 2}</div>\n'
            "</div>"
        )
    rel = "\n".join(
        f'    <li><a href="{esc(o.canonical_path)}">{esc(o.title)}</a></li>'
        for o in related(stories, s, 4)
    )
    body = "\n".join(
        [
            cookie_banner(),
            nav("SRE Commons Forum", "forum-nav"),
            '<div class="breadcrumbs">Forums &rsaquo; Surdellow Lounge &rsaquo; '
            "Incident Reviews</div>",
            '<main class="thread">',
            f'<h1 class="thread-title">{esc(s.title)}</h1>',
            '<div class="post first-post" id="post-1">',
            f'  <div class="post-author">{esc(author)} <span class="badge">Surdellow verified '
            f'company account</span> <span class="post-date">{date_text(s)}</span></div>',
            f'  <div class="post-body">\n{content}  </div>',
            "</div>",
            '<div class="replies">',
            "\n".join(replies),
            "</div>",
            "</main>",
            '<aside class="forum-sidebar">',
            "  <h3>Similar threads in the Surdellow Lounge</h3>",
            f"  <ul>\n{rel}\n  </ul>",
            "</aside>",
            '<footer class="forum-footer">',
            "  <p>SRE Commons is a community forum. Powered by Surdellow BB. "
            '<a href="/forum/rules.html">Rules</a> &middot; Trusketh hosting</p>',
            "</footer>",
        ]
    )
    return page(s, "forum", body)


RENDERERS = {
    "blog": render_blog,
    "status": render_status,
    "reader": render_reader,
    "readme": render_readme,
    "forum": render_forum,
}


def wayback_wrap(page_html: str, s: Story) -> str:
    original = BASE_URL + s.canonical_path
    toolbar = (
        '<div id="wm-ipp-base" class="wayback-toolbar">\n'
        '  <div id="wm-ipp">\n'
        '    <span class="wm-logo">Zindrafel Machine</span>\n'
        f'    <span class="wm-url">{esc(original)}</span>\n'
        "    <span>1 capture &middot; 15 Mar 2022</span>\n"
        '    <a href="#wm-about">About the zindrafel archive</a>\n'
        "  </div>\n"
        "</div>\n"
        "<!-- END WAYBACK TOOLBAR INSERT -->\n"
    )
    return page_html.replace("<body", "<!-- archived -->\n<body", 1).replace(
        'layout-blog">\n', 'layout-blog">\n' + toolbar, 1
    )


# --------------------------------------------------------------------------------------
# Site-level pages
# --------------------------------------------------------------------------------------


def simple_page(title: str, inner: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n</head>\n<body>\n"
        f"{cookie_banner()}\n"
        f"{nav('Failure Stories Demo')}\n"
        f"<main>\n<h1>{esc(title)}</h1>\n{inner}\n</main>\n"
        f"{footer('Failure Stories Demo')}\n"
        "</body>\n</html>\n"
    )


def index_page(stories: list[Story]) -> str:
    items = []
    for s in stories:
        if s.is_video or s.slug in (DEAD_WITH_SNAPSHOT_SLUG, DEAD_NO_SNAPSHOT_SLUG):
            continue
        items.append(
            f'  <li><a href="{esc(s.canonical_path)}">{esc(s.title)}</a> '
            f'<span class="src">{esc(s.publisher)}, {s.year}</span></li>'
        )
    inner = (
        "<p>Fictional sample incident write-ups used by the mlopsmortem offline demo. "
        "All companies and incidents are invented.</p>\n"
        '<ul class="post-list">\n' + "\n".join(items) + "\n</ul>"
    )
    return simple_page("Failure stories (demo site)", inner)


BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="90" height="20" role="img" '
    'aria-label="build: passing">\n'
    '  <rect width="40" height="20" fill="#555"/><rect x="40" width="50" height="20" '
    'fill="#4c1"/>\n'
    '  <text x="5" y="14" fill="#fff" font-family="Verdana" font-size="11">build</text>\n'
    '  <text x="44" y="14" fill="#fff" font-family="Verdana" font-size="11">passing</text>\n'
    "</svg>\n"
)

ROBOTS = "User-agent: *\nDisallow: /private/\nAllow: /\n"
