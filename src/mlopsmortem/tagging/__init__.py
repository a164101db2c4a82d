"""Tagging: every story gets canonical components and impacts, from three methods.

* **list**: each `involved:` / `impact:` item of a curated list, mapped through
  `taxonomy.map_list_item`; a match is a canonical tag (confidence 1.0), an item that matches
  nothing is kept as a *free* tag, and every row keeps the item as written in `original`.
* **rule**: taxonomy mentions in the title and the document text. A component counts when the
  title names it or the text names it `component_min_mentions` times; an impact counts from the
  title or from one of its `statements` in the text, never from alias mentions in running text
  (its aliases are everyday words a postmortem uses while explaining the cause).
* **semantic**: impacts from the stored text-passage embeddings (never card passages, which
  repeat the story's previous tags), scored by the logistic fit in the calibration file and
  tagged above its thresholds.

`tag_stories` writes `tags` rows, then fills `stories.components` / `stories.impacts` with the
sorted canonical tags whose confidence reaches `CONFIDENCE_CUT`, for `_facet_array`. Every row
and `meta.taxonomy_version` carry the taxonomy version.

Tagging is incremental: `tag_inputs` keeps per story a fingerprint of what the methods read and
the tags it mentions; a story is re-tagged only when its fingerprint changed or a taxonomy edit
touches an entry it mentions or now matches. Run-wide inputs (impact descriptions, exclusivity,
statement placeholders, taxonomy order) re-tag every story. docs/tagging.md has the details
and the calibration figures.

Modules, in dependency order: `tags` (Tag, StoryTags, TaggingError), `inputs` (what the methods
read, and its fingerprint), `listtags`, `rules`, `calibration` (the calibration file),
`semantic`, `store` (tags, facet arrays, `tag_inputs` and taxonomy versions in the database),
`run` (`tag_stories`), `logistic` (the score's fit) and `fitting` (`calibrate`,
`analyse_stories`).
"""
