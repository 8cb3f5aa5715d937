"""#20 item 3, a hand-made case on the session Ray: a URL listed with several captions (as `clipforge extract`
writes them) keeps one *matched* caption, every matched caption counts toward the entry counts, the others are
`other_caption` rejects naming the chosen one, and a URL with no matched caption is `no_match` once."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.build import build
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config

ENTRIES = ["zebra", "giraffe", "okapi"]
ROWS = [  # (url, caption)
    ("http://127.0.0.1:9/a.jpg", "a picture taken on a sunny afternoon"),  # no entry
    ("http://127.0.0.1:9/a.jpg", "a zebra standing in the tall grass"),  # only this one of a.jpg matches
    ("http://127.0.0.1:9/a.jpg", "another picture from the same afternoon"),  # no entry
    ("http://127.0.0.1:9/b.jpg", "a giraffe next to a zebra at the zoo"),  # both of b.jpg match
    ("http://127.0.0.1:9/b.jpg", "a giraffe eating leaves from a tree"),
    ("http://127.0.0.1:9/c.jpg", "nothing in this caption is in the list"),  # c.jpg: no caption matches
    ("http://127.0.0.1:9/c.jpg", "nor is anything in this one at all"),
    ("http://127.0.0.1:9/d.jpg", "an okapi in the forest shade today"),  # one caption only
]


def test_one_matched_caption_per_url_and_every_matched_caption_counted(ray_local, tmp_path):
    pq.write_table(pa.table({"url": [u for u, _ in ROWS], "caption": [c for _, c in ROWS]}), tmp_path / "c.parquet")
    (tmp_path / "metadata.json").write_text(json.dumps(ENTRIES))
    data = {
        "input": {"path": str(tmp_path / "c.parquet")},
        "output": str(tmp_path / "run"),
        "stages": ["text", "match", "balance"],
        "balance": {"t": 1000},  # every entry in the tail: balancing keeps every row
        "match": {"metadata": str(tmp_path / "metadata.json")},
    }
    manifest = build(validate_config(BuildConfig, data, "test"), say=lambda m: None)
    run = tmp_path / "run"
    kept = {r["url"]: r["caption"] for r in pq.read_table(run / "curated").to_pylist()}
    assert kept["http://127.0.0.1:9/a.jpg"] == ROWS[1][1]  # the second caption, the only one that matched
    assert kept["http://127.0.0.1:9/b.jpg"] in {ROWS[3][1], ROWS[4][1]}
    assert kept["http://127.0.0.1:9/d.jpg"] == ROWS[7][1] and len(kept) == 3
    rejects = pq.read_table(run / "rejects").to_pylist()
    by_url: dict[str, list] = {}
    for r in rejects:
        by_url.setdefault(r["url"], []).append(r)
    a = by_url["http://127.0.0.1:9/a.jpg"]
    assert [r["reason"] for r in a] == ["other_caption"] * 2 and {r["stage"] for r in a} == {"match"}
    assert all(f"was chosen: {ROWS[1][1]!r}; own reason: match/no_match" in r["detail"] for r in a)
    assert [r["reason"] for r in by_url["http://127.0.0.1:9/b.jpg"]] == ["other_caption"]
    assert sorted(r["reason"] for r in by_url["http://127.0.0.1:9/c.jpg"]) == ["no_match", "other_caption"]
    # entry counts: zebra in a.jpg's and b.jpg's first captions, giraffe in both of b.jpg's, okapi once
    assert np.load(run / "stats" / "entry_counts_pre.npy").tolist() == [2, 2, 1]
    assert manifest["counts"]["input_rows"] == len(ROWS) and manifest["counts"]["kept"] == 3
    funnel = json.loads((run / "stats" / "funnel.json").read_text())
    assert {"stage": "match", "reason": "other_caption", "rows": 4} in funnel["by_reason"]
    assert {"stage": "match", "reason": "no_match", "rows": 1} in funnel["by_reason"]
