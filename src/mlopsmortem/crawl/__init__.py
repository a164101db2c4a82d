"""Crawling: choosing and scheduling fetches, the guarded transport, the page store, and
what changed."""
