"""The HTML layouts bench/extract.py renders the shared corpus's articles into: seven kinds of
page (blog, forum, docs, a README, a magazine, div soup, calls to action inside the article),
their chrome full of `SENTINELS`, words no article contains, so that chrome an extractor keeps
shows up in its text."""

from __future__ import annotations

import html

# Words that occur only in the chrome of the generated pages (checked against the articles).
SENTINELS = (
    "vexmarion",
    "quillodrap",
    "snorbage",
    "plinthwax",
    "mudgeroo",
    "trevallic",
    "oskabrine",
    "fulmidge",
    "wendrostal",
    "kappelfry",
    "zorbleton",
    "hinquist",
)


# Chrome mixes full sentences (which an extractor can mistake for content) with link lists.
# Some layouts name their chrome semantically, one uses opaque CSS-module class names only.


def _s(number: int, offset: int = 0) -> str:
    return SENTINELS[(number + offset) % len(SENTINELS)]


def _head(title: str) -> str:
    t = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{t} | Bench Site'
        f'</title><meta name="author" content="Bench Author"><meta property="og:title" '
        f'content="{t}"><meta property="article:published_time" content="2021-04-05"></head>'
    )


def _comments(n: int, cls: str = "comment") -> str:
    items = "".join(
        f'<div class="{cls}"><p class="{cls}-author">user{i}</p><p>I really enjoyed this '
        f"write-up about the outage and we saw something very similar with our {_s(n, i)} "
        f"cluster last year, where the retry storm took down the database for an hour.</p>"
        f"<p>Did you consider moving the {_s(n, i + 1)} checks earlier in the pipeline?</p></div>"
        for i in range(4)
    )
    return f'<section id="comments"><h2>4 Comments</h2>{items}</section>'


def _related(n: int) -> str:
    items = "".join(
        f'<li><a href="/p{i}"><h3>How we rebuilt our {_s(n, i)} platform</h3></a><p>A story '
        f"about migrating a large fleet of services to the {_s(n, i + 2)} scheduler without "
        f"downtime, and what we learned along the way.</p></li>"
        for i in range(3)
    )
    return f'<section class="related-posts"><h2>Related posts</h2><ul>{items}</ul></section>'


def layout_blog(title: str, article: str, n: int) -> str:
    return (
        _head(title) + '<body><div class="cookie-notice"><p>This website uses cookies from '
        f"{_s(n)} to improve your experience. By continuing to browse the site you agree to "
        f"our use of cookies and to the {_s(n, 1)} privacy policy.</p><button>Accept</button>"
        f'</div><nav class="top-nav"><a href="/">Home</a> <a href="/b">{_s(n, 2)} Blog</a>'
        '</nav><div class="layout"><main><article class="post"><header class="post-header">'
        f'<p class="byline">By Bench Author, 5 April 2021</p></header><div class="post-body">'
        f'{article}</div></article><div class="share-bar">Share on {_s(n, 3)} Twitter LinkedIn'
        f"</div>{_comments(n)}</main>"
        f'<aside class="sidebar"><div class="about"><h3>About the author</h3><p>Bench Author '
        f"is a site reliability engineer at {_s(n, 4)} who writes about distributed systems, "
        f"incident response and the occasional failed deploy.</p></div>{_related(n)}"
        f'<div class="newsletter-signup"><h3>Subscribe</h3><p>Get the {_s(n, 5)} newsletter '
        "with our best engineering stories delivered to your inbox every month.</p></div>"
        f'</aside></div><footer class="site-footer"><p>Copyright 2024 {_s(n, 6)} Inc. All '
        "rights reserved. Made with care by the platform team.</p></footer></body></html>"
    )


def layout_divsoup(title: str, article: str, n: int) -> str:
    # CSS-module class names: nothing in the markup says what is chrome.
    return (
        _head(title) + '<body><div class="css-1q2w3e"><div class="css-9k8j7h"><p>We value your '
        f"privacy. We and our {_s(n)} partners store and access information on your device "
        "to provide personalised content and measure audience engagement.</p><span>Accept"
        f'</span></div><div class="css-4r5t6y"><a href="/">{_s(n, 1)}</a> <a href="/x">'
        f'Products</a> <a href="/y">Pricing</a></div><div class="css-7u8i9o"><div '
        f'class="css-0p1a2s"><h1 class="css-3d4f5g">{html.escape(title)}</h1><div '
        f'class="css-6h7j8k">{article}</div></div><div class="css-9l0z1x"><h4>Recommended '
        f"for you</h4><div><p>Read how the {_s(n, 2)} team cut their cloud bill in half by "
        "rightsizing every node pool in production.</p></div><div><p>Ten lessons from "
        f"running {_s(n, 3)} at scale for five years, and the mistakes we made.</p></div>"
        f'</div></div><div class="css-2c3v4b"><p>Responses (2)</p><div><p>Great article, '
        f"the part about the {_s(n, 4)} rollout matches exactly what happened at my company."
        f"</p></div><div><p>We had the same problem but solved it with {_s(n, 5)} instead.</p>"
        f'</div></div><div class="css-5n6m7q"><p>{_s(n, 6)} Inc. 2024. Terms. Privacy. '
        "Careers. Help.</p></div></div></body></html>"
    )


def layout_docs(title: str, article: str, n: int) -> str:
    toc = "".join(
        f'<li class="toctree-l1"><a href="/d{i}">{_s(n, i)} guide {i}</a></li>' for i in range(6)
    )
    return (
        _head(title) + '<body><div class="related" role="navigation"><ul><li><a href="/">'
        f'{_s(n)} docs</a> &raquo;</li><li>Incident reports</li></ul></div><div class="document">'
        '<div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">'
        f'<div class="section">{article}</div></div></div></div><div class="sphinxsidebar" '
        f'role="navigation"><h3>Table of contents</h3><ul>{toc}</ul><div class="searchbox">'
        f'<form><input name="q"></form></div></div></div><div class="footer">&copy; Copyright '
        f"2024, the {_s(n, 3)} project. Created using Sphinx. Last updated on 5 April 2021."
        f'</div><div class="rst-versions"><span>Read the Docs</span> v: latest {_s(n, 4)}</div>'
        "</body></html>"
    )


def layout_readme(title: str, article: str, n: int) -> str:
    files = "".join(
        f'<tr class="file-row"><td><a href="/f{i}">file{i}.md</a></td><td>Fix typo in the '
        f"{_s(n, i)} section of the postmortem</td><td>3 years ago</td></tr>"
        for i in range(5)
    )
    return (
        _head(title) + '<body><header class="AppHeader"><a href="/">Code host</a> <input '
        f'placeholder="Search or jump to"></header><div class="repohead"><h2>org / {_s(n)}'
        '-postmortems</h2><nav class="UnderlineNav"><a>Code</a><a>Issues 12</a><a>Pull '
        'requests 3</a><a>Actions</a></nav></div><div class="Layout"><div class="Layout-main">'
        f'<table class="files">{files}</table><div id="readme" class="Box"><div class="Box-header">'
        'README.md</div><article class="markdown-body entry-content">'
        f'{article}</article></div></div><div class="Layout-sidebar"><h2>About</h2><p>Public '
        f"postmortems of the {_s(n, 1)} platform team, shared so others can learn from our "
        f"mistakes.</p><ul><li>{_s(n, 2)} Readme</li><li>MIT license</li><li>412 stars</li>"
        '</ul></div></div><footer class="footer"><ul><li>Terms</li><li>Privacy</li><li>'
        f"Security</li><li>Status</li><li>{_s(n, 3)} Docs</li></ul></footer></body></html>"
    )


def layout_forum(title: str, article: str, n: int) -> str:
    replies = "".join(
        f'<div class="topic-post reply"><div class="topic-avatar">u{i}</div>'
        '<div class="topic-body">'
        f'<div class="names">{_s(n, i)}_fan</div><div class="cooked"><p>Thanks for sharing '
        f"this, we run a very similar setup on {_s(n, i + 1)} and this thread just saved us "
        f"from making the same mistake in production next week.</p></div></div></div>"
        for i in range(3)
    )
    return (
        _head(title) + '<body><div class="d-header"><a href="/">Community forum</a> <a '
        f'href="/latest">{_s(n)} latest</a></div><div id="main-outlet"><h1 class="fancy-title">'
        f'{html.escape(title)}</h1><div class="topic-post first"><div class="topic-avatar">op'
        '</div><div class="topic-body"><div class="names">op_user</div><div class="cooked">'
        f'{article}</div></div></div>{replies}<div class="suggested-topics"><h3>Suggested '
        f"topics</h3><table><tr><td>Upgrading {_s(n, 2)} without downtime</td><td>12 replies"
        f"</td></tr><tr><td>Best practices for {_s(n, 3)} alerts</td><td>4 replies</td></tr>"
        "</table></div></div></body></html>"
    )


def layout_magazine(title: str, article: str, n: int) -> str:
    return (
        _head(title) + '<body><div id="gdpr-consent" role="dialog"><p>We and our partners use '
        f"{_s(n)} cookies and similar technologies to deliver ads and analyse traffic.</p></div>"
        f'<header class="site-header"><div class="logo">{_s(n, 1)} Weekly</div><ul class="menu">'
        '<li>News</li><li>Features</li><li>Podcasts</li></ul></header><div class="content-area">'
        f'<h1 class="entry-title">{html.escape(title)}</h1><div class="entry-meta">Posted in '
        f'Engineering by Bench Author</div><div class="entry-content">{article}'
        f'<div class="ad-slot advertisement"><p>Sponsored: try {_s(n, 2)} cloud free for 30 '
        "days and ship your infrastructure faster than ever before.</p></div></div>"
        f'<div class="author-box"><p>Bench Author writes about {_s(n, 3)} and reliability '
        "engineering for teams that run their own infrastructure.</p></div>"
        f'<div class="social-share"><a>Facebook</a><a>{_s(n, 4)}</a></div>{_related(n + 5)}'
        f'{_comments(n + 6, "comment-body")}</div><div id="footer-widgets"><p>{_s(n, 7)} '
        "Weekly is an independent publication about infrastructure and operations.</p></div>"
        "</body></html>"
    )


def layout_inline(title: str, article: str, n: int) -> str:
    # Chrome inside the article element itself, as blogs insert calls to action mid-post.
    parts = article.split("</p>", 3)
    if len(parts) == 4:
        article = (
            "</p>".join(parts[:2]) + f'</p><aside class="read-next"><h4>Read next</h4><a '
            f'href="/n">Why our {_s(n)} migration took two years</a></aside>{parts[2]}</p>'
            f'<div class="newsletter-cta"><p>Enjoying this post? Get the {_s(n, 1)} digest of '
            "engineering stories in your inbox every other week.</p><form><input></form></div>"
            + parts[3]
        )
    return (
        _head(title) + '<body><header class="site-header"><a href="/">Home</a></header><main>'
        f'<article class="post">{article}<div class="post-tags">Tags: <a href="/t">{_s(n, 2)}'
        '</a> <a href="/k">kubernetes</a></div><div class="author-bio"><p>Bench Author is a '
        f"staff engineer at {_s(n, 3)} and has been on call for far too many years.</p></div>"
        f'<div class="post-navigation"><a href="/prev">Previous: {_s(n, 4)} capacity planning '
        f'notes</a> <a href="/next">Next: our {_s(n, 5)} on-call handbook</a></div>'
        f'<ul class="share-links"><li><a>Share on {_s(n, 6)}</a></li><li><a>Email</a></li></ul>'
        "</article></main></body></html>"
    )


LAYOUTS = {
    "inline": layout_inline,
    "blog": layout_blog,
    "divsoup": layout_divsoup,
    "docs": layout_docs,
    "readme": layout_readme,
    "forum": layout_forum,
    "magazine": layout_magazine,
}
