"""Exporting the knowledge base as a research dataset with a manifest and a datasheet."""
