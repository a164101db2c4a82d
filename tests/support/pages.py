"""A plain article page for crawl tests: the title and six paragraphs of the given text."""

from __future__ import annotations


def article(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        + "".join(f"<p>{body} Sentence {i} of the write-up.</p>" for i in range(6))
        + "</article></body></html>"
    )
