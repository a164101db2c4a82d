"""Passages: chunking documents into model-sized passages and embedding them."""
