"""Extraction: stored page bytes to a `Document` of clean text and metadata (HTML, PDF, text)."""
