"""Source lists: markdown blocks, list formats and ingesting entries into stories."""
