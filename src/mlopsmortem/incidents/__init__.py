"""Incident cards: what happened, what set it off, how it was found, how long it lasted, how it
was fixed, each field taken from the story's own text with its evidence (docs/incidents.md)."""
