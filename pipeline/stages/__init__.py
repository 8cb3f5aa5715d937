"""Ray Data stages: thin wrappers around `curation/`, one file each; `base.apply_stage` runs them."""
