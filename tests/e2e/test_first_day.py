"""What a new user hits on the first day, run as typed (`python -m pipeline.cli ...`): exit status, message, disk.

No test here builds anything: the answers checked come before Ray starts. Where a test says "no Ray", the command
runs with a stand-in `ray` package first on PYTHONPATH that fails on import, so importing Ray at all would fail it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.build import check_output, open_run
from pipeline.build_config import BuildConfig
from pipeline.core.config import dump_config, validate_config
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import exists, list_uris, write_bytes
from pipeline.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
NO_RAY = "raise RuntimeError('ray was imported: this command must answer before Ray starts')\n"


@pytest.fixture
def inputs(tmp_path):
    """(tmp, candidates.parquet with loopback URLs, metadata.json)."""
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["red", "circle", "square"]))
    cands = tmp_path / "candidates.parquet"
    urls = [f"http://127.0.0.1:9/{i}.jpg" for i in range(40)] + ["http://localhost/x.jpg"]
    pq.write_table(pa.table({"url": urls, "caption": ["a red circle on white"] * len(urls)}), cands)
    return tmp_path, cands, meta


@pytest.fixture
def no_ray(tmp_path):
    fake = tmp_path / "no_ray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text(NO_RAY)
    return fake


def cli(*args: str, no_ray: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ADDRESS": ""}
    if no_ray is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(no_ray), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def build_args(cands: Path, meta: Path, out: Path | str, *extra: str) -> list[str]:
    sets = [f"input.path={cands}", f"match.metadata={meta}", f"output={out}", "stages=[text,match]", *extra]
    return ["build", "configs/base.yaml", *[a for s in sets for a in ("--set", s)]]


def finished_run(out: Path, cands: Path, meta: Path, *extra: str) -> BuildConfig:
    """A finished text-only run as a build leaves it (config.yaml, manifest.json, stats/funnel.json)."""
    data = {"input": {"path": str(cands)}, "match": {"metadata": str(meta)}, "output": str(out)}
    cfg = validate_config(BuildConfig, {**data, "stages": ["text", "match"]}, "test")
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(dump_config(cfg))
    (out / "manifest.json").write_text(json.dumps({"status": "complete", "counts": {"kept": 30}}))
    (out / "stats").mkdir()
    funnel = {"input_rows": 41, "kept": 30, "rejected": 11, "by_reason": [{"stage": "match", "reason": "no_match",
              "rows": 11}], "by_stage": []}  # fmt: skip
    (out / "stats" / "funnel.json").write_text(json.dumps(funnel))
    return cfg


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- item 2: --overwrite never deletes what is not a clipforge run ---------------------------------------------
@pytest.mark.parametrize("flags", [["--overwrite"], []])
def test_a_users_directory_is_refused_with_or_without_overwrite(inputs, no_ray, flags):
    tmp, cands, meta = inputs
    mine = tmp / "mine"
    (mine / "drafts").mkdir(parents=True)
    (mine / "thesis.txt").write_text("four years of work")
    (mine / "drafts" / "ch1.md").write_text("# one")
    before = snapshot(mine)
    res = cli(*build_args(cands, meta, mine), *flags, no_ray=no_ray)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "is not empty and is not a clipforge run directory" in res.stderr
    assert "thesis.txt" in res.stderr and "Nothing was written or deleted" in res.stderr
    assert ("--overwrite clears only a clipforge run directory" in res.stderr) == bool(flags)
    assert "Traceback" not in res.stderr
    assert snapshot(mine) == before


def test_overwrite_clears_a_recognisable_run(inputs):
    tmp, cands, meta = inputs
    out = tmp / "run"
    cfg = finished_run(out, cands, meta)
    (out / "shards").mkdir()
    (out / "shards" / "shard-000000.tar").write_bytes(b"old")
    assert open_run(cfg, RunDir(str(out)), say=lambda m: None, overwrite=True) is None
    assert sorted(snapshot(out)) == ["config.yaml", "work/started.json"]


def test_s3_prefixes_are_guarded_the_same_way(inputs, s3_bucket, local_s3):
    tmp, cands, meta = inputs
    opts = local_s3.options()

    def cfg_for(uri: str) -> BuildConfig:
        data = {"input": {"path": str(cands)}, "match": {"metadata": str(meta)}, "output": uri, "stages": ["text"]}
        return validate_config(BuildConfig, {**data, "s3": opts.model_dump()}, "test")

    assert check_output(cfg_for(f"{s3_bucket}/new"), RunDir(f"{s3_bucket}/new", opts), overwrite=True) == "new"
    users = f"{s3_bucket}/users"
    write_bytes(f"{users}/photos/cat.jpg", b"meow", opts)
    for overwrite in (False, True):
        with pytest.raises(ClipforgeError, match="not a clipforge run directory"):
            open_run(cfg_for(users), RunDir(users, opts), say=lambda m: None, overwrite=overwrite)
    assert exists(f"{users}/photos/cat.jpg", opts)
    run = f"{s3_bucket}/run"
    write_bytes(f"{run}/config.yaml", dump_config(cfg_for(run)).encode(), opts)
    write_bytes(f"{run}/stats/funnel.json", b"{}", opts)
    assert check_output(cfg_for(run), RunDir(run, opts)) == "resume"  # config.yaml read from S3, same identity
    assert open_run(cfg_for(run), RunDir(run, opts), say=lambda m: None, overwrite=True) is None
    assert [u.path.removeprefix("run/") for u in list_uris(run, opts)] == ["config.yaml", "work/started.json"]
    with pytest.raises(ClipforgeError, match="not a clipforge run directory"):  # a bucket root holding objects
        check_output(cfg_for(s3_bucket), RunDir(s3_bucket, opts), overwrite=True)


# --- item 7: --dry-run runs the preflight it lists ---------------------------------------------------------------
def test_dry_run_refuses_a_missing_input_and_metadata(inputs, no_ray):
    tmp, cands, meta = inputs
    res = cli(*build_args(tmp / "nope.parquet", meta, tmp / "out"), "--dry-run", no_ray=no_ray)
    assert res.returncode == 2 and "input.path" in res.stderr and "does not exist" in res.stderr
    res = cli(*build_args(cands, tmp / "nometa.json", tmp / "out"), "--dry-run", no_ray=no_ray)
    assert res.returncode == 2 and "match.metadata" in res.stderr and "nometa.json" in res.stderr
    assert not (tmp / "out").exists()


def test_dry_run_prints_paths_counts_and_warns_about_loopback_urls(inputs, no_ray):
    tmp, cands, meta = inputs
    args = build_args(cands, meta, tmp / "out", "stages=[text,match,download,balance]")
    res = cli(*args, "--dry-run", no_ray=no_ray)
    assert res.returncode == 0, res.stderr
    assert f"input     {cands}  (parquet, 41 rows)" in res.stderr
    assert f"metadata  {meta}  (3 entries)" in res.stderr
    assert f"output    {tmp / 'out'}  (nothing there: a new run)" in res.stderr
    assert "41 URLs sampled: 41 would be refused before connecting (forbidden_address: loopback 41)" in res.stderr
    assert "warning: every one of the 41 sampled URLs would be rejected by download" in res.stderr
    assert "download.fetch.allow_cidrs" in res.stderr
    assert res.stdout.splitlines()[0] == " 1. preflight: input files, metadata, eval sets"  # the plan, as before
    assert not (tmp / "out").exists()
    allowed = cli(*args, "--set", "download.fetch.allow_cidrs=['127.0.0.0/8','::1/128']", "--dry-run", no_ray=no_ray)
    assert allowed.returncode == 0 and "warning" not in allowed.stderr
    assert "41 URLs sampled: 0 would be refused" in allowed.stderr


# --- item 10: answers that need no cluster come before Ray ---------------------------------------------------
def test_a_finished_run_is_a_noop_without_ray(inputs, no_ray):
    tmp, cands, meta = inputs
    out = tmp / "run"
    finished_run(out, cands, meta)
    before = snapshot(out)
    res = cli(*build_args(cands, meta, out), no_ray=no_ray)
    assert res.returncode == 0, res.stderr
    assert "is already complete (manifest.json); nothing to do" in res.stdout
    assert "kept               30" in res.stdout and f"run directory: {out}" in res.stdout
    assert snapshot(out) == before


def test_a_config_mismatch_names_the_keys_without_ray(inputs, no_ray):
    tmp, cands, meta = inputs
    out = tmp / "run"
    finished_run(out, cands, meta)
    before = snapshot(out)
    res = cli(*build_args(cands, meta, out, "download.fetch.allow_cidrs=[127.0.0.0/8]"), no_ray=no_ray)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "was started with a different config" in res.stderr
    assert "download.fetch.allow_cidrs ([] there, ['127.0.0.0/8'] now)" in res.stderr and "--overwrite" in res.stderr
    assert snapshot(out) == before


# --- smaller items -------------------------------------------------------------------------------------------------
def test_config_errors_are_short_and_suggest_keys():
    res = cli("build", "configs/base.yaml", "--set", "input.path=x", "--set", "output=y")
    assert res.returncode == 2
    assert res.stderr.strip().endswith(": match.metadata is required when the match stage runs.")
    assert "'input': {" not in res.stderr and len(res.stderr) < 300
    res = cli("build", "configs/base.yaml", "--set", "match.metadata=m", "--set", "download.thread=4")
    assert res.returncode == 2 and "unknown key 'download.thread' (did you mean 'download.threads'?)" in res.stderr


def test_stats_says_how_many_reasons_it_left_out(tmp_path):
    (tmp_path / "stats").mkdir()
    rows = [{"stage": "download", "reason": f"reason_{i:02d}", "rows": 100 - i} for i in range(20)]
    funnel = {"input_rows": 3000, "kept": 1000, "rejected": 1810, "by_reason": rows, "by_stage": []}
    (tmp_path / "stats" / "funnel.json").write_text(json.dumps(funnel))
    res = cli("stats", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "reason_14" in res.stdout and "reason_15" not in res.stdout
    assert res.stdout.splitlines()[-1] == "  +5 more reasons (415 rows): stats/funnel.json lists them all"


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), ClipforgeError("accounting invariant broken")])
def test_an_interrupted_build_says_how_to_resume(inputs, monkeypatch, capsys, stop):
    """In process, with Ray's start stubbed and the build stopped at its first step."""
    import pipeline.build
    import pipeline.core.ray_setup
    from pipeline.cli import main

    tmp, cands, meta = inputs

    def stopped(cfg, say):
        raise stop

    monkeypatch.setattr(pipeline.core.ray_setup, "init_ray", lambda **kw: None)
    monkeypatch.setattr(pipeline.build, "execute", stopped)
    args = build_args(cands, meta, tmp / "run")
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == (130 if isinstance(stop, KeyboardInterrupt) else 2)
    assert "Resume with the same command:\n  clipforge build configs/base.yaml --set" in err
    assert f"output={tmp / 'run'}" in err and "'stages=[text,match]'" in err and "add --overwrite" in err
    assert (tmp / "run" / "config.yaml").exists()  # the run was opened: the command resumes it


def test_a_malformed_opt_out_registry_is_named_before_ray(inputs, no_ray):
    tmp, cands, meta = inputs
    (tmp / "optout.txt").write_text("example.com\nexample .org\n")
    args = build_args(cands, meta, tmp / "run", "stages=[text,match,download]")
    res = cli(*args, "--set", f"download.opt_out_registry={tmp / 'optout.txt'}", no_ray=no_ray)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"download.opt_out_registry: {tmp / 'optout.txt'} line 2: 'example .org' holds a space" in res.stderr
    assert not (tmp / "run").exists()
