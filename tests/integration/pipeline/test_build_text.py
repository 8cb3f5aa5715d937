"""A text-only build ([text, match, balance]) over a synthetic-web candidate list on a local Ray.

Asserts the accounting invariant from the artifacts, the reasons the web's answers predict (foreign captions →
`lang`, repeated URLs → `other_caption`, junk → `no_match`), entry counts before/after balancing in stats/, and that
balancing only downsamples head entries while keeping every row whose entries are all in the tail.
"""

import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.build import build
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config
from pipeline.core.errors import ClipforgeError
from tests.fixtures.builds import text_build_config


def config(web, metadata, out, **balance):
    return text_build_config(web, metadata, out, **balance)


@pytest.fixture
def run(text_build):
    return text_build


def test_accounting_and_manifest(run, web):
    out, manifest = run
    n_input = pq.read_metadata(web / "candidates.parquet").num_rows
    kept = pq.read_table(out / "curated")
    rejects = pq.read_table(out / "rejects")
    assert manifest["status"] == "complete"
    assert kept.num_rows + rejects.num_rows == n_input == manifest["counts"]["input_rows"]
    assert kept.num_rows == manifest["counts"]["kept"] > 0
    assert len(pc.unique(kept["uid"])) == kept.num_rows
    primary = rejects.filter(pc.field("reason") != "other_caption")
    assert not set(kept["uid"].to_pylist()) & set(primary["uid"].to_pylist())
    funnel = json.loads((out / "stats" / "funnel.json").read_text())
    assert sum(r["rows"] for r in funnel["by_reason"]) == rejects.num_rows
    assert (out / "config.yaml").exists() and not (out / "work").exists()


def test_reasons_match_the_answers(run, web):
    out, _ = run
    answers = pq.read_table(web / "answers.parquet").to_pandas()
    rejects = pq.read_table(out / "rejects").to_pandas()
    kept = pq.read_table(out / "curated").to_pandas()
    by_url = rejects.groupby("url")["reason"].apply(set).to_dict()
    foreign = answers[answers.lang.isin(["de", "fr", "es"])]
    langs = [("lang" in by_url.get(u, set()) or "other_caption" in by_url.get(u, set())) for u in foreign.url]
    assert np.mean(langs) >= 0.9, "foreign captions should be rejected by language ID"
    assert (rejects.reason == "other_caption").sum() == len(answers) - answers.url.nunique()
    assert "no_match" in set(rejects.reason)
    assert set(kept.lang) == {"en"}
    assert all(len(ids) > 0 for ids in kept.entry_ids)


def test_balancing_counts_and_tail(run):
    out, manifest = run
    pre = np.load(out / "stats" / "entry_counts_pre.npy")
    post = np.load(out / "stats" / "entry_counts_post.npy")
    t = manifest["balance"]["t"]
    assert pre.dtype == np.uint64 and pre.shape == post.shape
    assert (post <= pre).all() and post.sum() < pre.sum()
    head = pre > 3 * t
    assert head.any() and (post[head] < pre[head]).all(), "head entries are downsampled"
    kept = pq.read_table(out / "curated")
    assert (pc.min(kept["keep_prob"]).as_py() > 0) and pc.max(kept["keep_prob"]).as_py() <= 1.0
    # a row whose every entry is tail (count < t) has keep_prob 1 and is always kept
    tail_only = [all(pre[e] < t for e in ids) for ids in kept["entry_ids"].to_pylist()]
    probs = np.asarray(kept["keep_prob"])
    assert np.allclose(probs[np.asarray(tail_only)], 1.0)


def test_rerun_is_a_noop_and_deterministic(run, web, metadata, tmp_path):
    out, manifest = run
    again = build(config(web, metadata, out), say=lambda m: None)
    assert again == manifest
    other = build(config(web, metadata, tmp_path / "again"), say=lambda m: None)
    a = sorted(pq.read_table(out / "curated")["uid"].to_pylist())
    b = sorted(pq.read_table(tmp_path / "again" / "curated")["uid"].to_pylist())
    assert a == b and other["counts"] == manifest["counts"]


def test_config_errors_name_the_key():
    with pytest.raises(ClipforgeError, match="match.metadata is required"):
        validate_config(BuildConfig, {"input": {"path": "x"}, "output": "y"}, "test")
    with pytest.raises(ClipforgeError, match="unknown key 'balance.tt'"):
        validate_config(BuildConfig, {"input": {"path": "x"}, "output": "y", "balance": {"tt": 1}}, "test")


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=300)


def test_stats_command_prints_the_funnel(run):
    out, manifest = run
    res = _cli("stats", str(out))
    assert res.returncode == 0, res.stderr
    assert f"kept       {manifest['counts']['kept']:>10}" in res.stdout
    assert "langid" in res.stdout and "lang" in res.stdout and "other_caption" in res.stdout


def test_stats_on_a_non_run_is_a_clear_error(tmp_path):
    res = _cli("stats", str(tmp_path))
    assert res.returncode == 2 and "not a finished clipforge build" in res.stderr and "Traceback" not in res.stderr


def test_build_dry_run_prints_the_plan_build_runs(run, web, metadata, tmp_path):
    """The plan `--dry-run` prints is the list of steps `build` executed (the manifest's seconds_by_step, in order),
    and the funnel orders its stages as those steps run."""
    out, manifest = run
    res = _cli(
        "build", "configs/base.yaml", "--dry-run", "--set", f"input.path={web}/candidates.parquet",
        "--set", f"output={tmp_path}/r", "--set", f"match.metadata={metadata}", "--set", "stages=[text,match,balance]",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "r").exists()
    lines = [line.strip().split(". ", 1)[1] for line in res.stdout.splitlines()]  # " 2. text: ingest"
    planned = list(dict.fromkeys(line.split(":")[0] for line in lines[1:-1]))  # between preflight and manifest.json
    assert planned == list(manifest["seconds_by_step"]) == ["text", "balance", "write", "accounting"]
    assert lines[0].startswith("preflight") and lines[-1].startswith("manifest.json")
    pick = "text: one_record_per_url (barrier: sort by uid; one matched caption drawn per URL)"
    assert lines.index("text: match") + 1 == lines.index(pick)  # captions are matched before one per URL is drawn
    funnel = json.loads((out / "stats" / "funnel.json").read_text())
    assert [s["stage"] for s in funnel["by_stage"]] == ["text", "langid", "match", "balance"]
