"""Tagging: every story gets canonical components and impacts, from three methods.

* **list**: each item a curated list wrote under `involved:` / `impact:` goes through
  `taxonomy.map_list_item`. A match becomes a canonical tag (confidence 1.0); an item that
  matches nothing is kept as a *free* tag (`free` = 1, `tag` = the item lightly normalised,
  kind from the line it was on). Every row keeps the item as written in `original`.
* **rule**: `taxonomy.find_mentions` over the title (the list's; the page's only when the list
  has none) and the document text. A component counts when the title names it, or the text
  names it at least `component_min_mentions` times (2, measured on the demo gold tags: list |
  rule precision 0.99 / recall 0.92, against 0.89 / 0.97 at 1 and 1.00 / 0.85 at 3; see
  `calibrate`). Impacts count from the title, not from alias mentions in the text: their
  aliases are everyday words ("timeouts", "rolled back", "overload"), which measured 0.49
  precision in running text against 1.0 (4 of 4) in titles. In the text an impact counts
  when one of its `statements` matches (`impact_statements.find_statements`): a pattern for a
  sentence that says the impact happened ("three engineers spent most of two days", "was down
  for 3 hours"), unless the sentence matches one of its `statement_exclude` patterns.
* **semantic**: impacts from the stored passage embeddings. Each impact's description is split
  into sentences and embedded once per run; a passage's similarity to an impact is its best
  cosine with those sentences, minus the passage's mean similarity to all semantic impacts
  (a passage that resembles every impact says little about any). A story's similarity is the maximum
  over its text passages, standardised per impact with the calibration corpus's mean and
  standard deviation (z). The score of an impact is `Calibration.score`: the log-odds of a
  logistic fit of the gold impacts on z and log(1 + the impact's alias mentions in the text)
  (mentions alone are poor evidence, 0.49 precision, but they sharpen z). The story's
  best-ranked impact is tagged when its score >= `top`, any other when >= `other`. Weights,
  thresholds, statistics and `component_min_mentions` live in
  `data/tagging_calibration.json`, fitted by `calibrate` on the demo corpus's gold tags with
  leave-one-story-out figures beside the in-sample ones (impact F1 of all methods 0.76
  in-sample, 0.73 held out; z thresholds alone 0.77 and 0.72; one z threshold per impact
  0.80 in-sample but 0.66 held out).
  An impact without a positive example there (no-user-impact) is not tagged semantically.
  Card passages are not used: a card lists the story's own tags, which would feed the tagger
  its previous output; stories without text passages get list and title tags only.

`tag_stories` writes `tags` rows, then fills `stories.components` / `stories.impacts` with the
sorted canonical (non-free) tags of any method whose confidence reaches `CONFIDENCE_CUT`, for
Datasette's `_facet_array`. Every row and `meta.taxonomy_version` carry the taxonomy version.

Incremental: `tag_inputs` (migration 5) keeps per story a fingerprint of
what the methods read (list items, titles, document text hash, text passages and whether each
has a current embedding, calibration, impact descriptions, model, `METHOD_VERSION`), the
taxonomy version the story was tagged under and every tag its text or list items *mention*
(whatever the count). A story whose fingerprint changed is re-tagged. When only the taxonomy
changed, its entries are compared with those of the story's version (kept in `meta` under
`tagging_taxonomy:<version>`): a story is re-tagged only if it mentioned a changed entry or
its text or list items match a changed entry's new aliases, exclusions or statements; the
others just get the new version stamped on their rows. An impact description change alters the
fingerprint of every story (it moves every semantic score), and so does a change to impact
exclusivity (`exclusive_with`) or the statement placeholders; a reordering of the taxonomy
re-tags every story too (order breaks ties between aliases).

Modules, in dependency order: `tags` (Tag, StoryTags, TaggingError), `inputs` (what the methods
read, and its fingerprint), `listtags`, `rules`, `calibration` (the calibration file),
`semantic`, `store` (tags, facet arrays, `tag_inputs` and taxonomy versions in the database),
`run` (`tag_stories`), `logistic` (the score's fit) and `fitting` (`calibrate`,
`analyse_stories`).
"""
