"""Pure curation algorithms (text, language ID, matching, balancing, images, dedup). Never imports Ray."""
