"""`input.keep_columns`: which input columns a build carries and under which names; `RESERVED_COLUMNS` covers every
column the stages add or write, so an input column can never overwrite one."""

import pytest

from pipeline.build import KEPT_COLUMNS
from pipeline.build_config import InputConfig
from pipeline.build_images import LIGHT_COLUMNS
from pipeline.core.errors import ClipforgeError
from pipeline.ingest import RESERVED_COLUMNS, input_column_map, input_columns
from pipeline.rundir import REJECT_FILE_COLUMNS
from pipeline.shards import JSON_FIELDS, SIDECAR_COLUMNS
from pipeline.stages.base import REJECT_COLUMNS
from pipeline.stages.download import FETCH_COLUMNS, IMAGE_COLUMNS
from pipeline.stages.download_parts import PART_INPUT_COLUMNS


def test_reserved_columns_cover_every_column_the_build_writes():
    lists = [KEPT_COLUMNS, LIGHT_COLUMNS, SIDECAR_COLUMNS, JSON_FIELDS, REJECT_COLUMNS, PART_INPUT_COLUMNS]
    lists += [list(FETCH_COLUMNS), list(IMAGE_COLUMNS), list(REJECT_FILE_COLUMNS), list(REJECT_FILE_COLUMNS.values())]
    written = {c for names in lists for c in names} | {"part", "shard", "key"}
    assert written <= RESERVED_COLUMNS, sorted(written - RESERVED_COLUMNS)


def test_all_columns_are_kept_and_clashes_prefixed():
    cfg = InputConfig(path="in.parquet", caption_col="text")
    names = ["uid", "url", "text", "clip_score", "width"]
    assert input_column_map(cfg, names) == {"uid": "input_uid", "clip_score": "clip_score", "width": "input_width"}
    assert input_columns(["uid", "url", "input_uid", "clip_score", "reject_reason"]) == ["input_uid", "clip_score"]


def test_a_list_keeps_only_those_and_an_empty_list_none():
    names = ["uid", "url", "caption", "clip_score"]
    assert input_column_map(InputConfig(path="x", keep_columns=["clip_score"]), names) == {"clip_score": "clip_score"}
    assert input_column_map(InputConfig(path="x", keep_columns=[]), names) == {}
    # the URL and caption columns are carried as url/caption already
    assert input_column_map(InputConfig(path="x", keep_columns=["url"]), names) == {}


def test_a_missing_column_and_a_name_clash_are_clear_errors():
    with pytest.raises(ClipforgeError, match=r"input.keep_columns names \['score'\].*it has \['caption', 'url'\]"):
        input_column_map(InputConfig(path="x", keep_columns=["score"]), ["url", "caption"])
    with pytest.raises(ClipforgeError, match=r"\['input_uid'\] would be kept under the same name"):
        input_column_map(InputConfig(path="x"), ["url", "caption", "uid", "input_uid"])
