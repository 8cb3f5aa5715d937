"""The per-language funnel of a worldwide build's match stage (`pipeline.stages.match.language_funnel_block`)."""

import json

import pyarrow as pa

from pipeline.stages.match import language_funnel_block


def test_funnel_counts_rows_that_reached_the_match_stage_by_list_language_or_label():
    batch = pa.table(
        {
            "lang": ["en", "en", "yue", "zh", "th", "th", "de", None],
            "metadata_lang": ["en", "en", "zh", "zh", None, None, None, None],
            "reject_stage": [None, "match", None, "match", "match", "text", "langid", "text"],
            "reject_reason": [None, "no_match", None, "no_match", "no_metadata_language", "too_short", "lang", "x"],
        }
    )
    funnel = json.loads(language_funnel_block(batch)["funnel"][0].as_py())
    # text/langid rejects never reached matching; yue counts under its list (zh); th has no list: its label
    assert funnel == {"en": [2, 1], "zh": [2, 1], "th": [1, 0]}
