"""The checks a build makes before Ray starts: the output guard, config differences, "did you mean", the dry run's
download foresight (no DNS) and the funnel's "+N more"."""

import pytest

from curation.fetch_config import FetchConfig
from pipeline.build import check_output, open_run
from pipeline.build_checks import config_differences, foresee_refusals, foresight_lines, guard_output
from pipeline.build_config import BuildConfig
from pipeline.core.config import ConfigError, dump_config, validate_config
from pipeline.core.errors import ClipforgeError
from pipeline.rundir import RunDir
from pipeline.stats import format_funnel


def cfg(out, **extra) -> BuildConfig:
    data = {"input": {"path": "c.parquet"}, "output": str(out), "match": {"metadata": "m.json"}, **extra}
    return validate_config(BuildConfig, data, "test")


def fake_run(out, config: BuildConfig, markers=("stats",)) -> None:
    """A directory that is recognisably a run: its config.yaml and the given markers."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(config))
    for m in markers:
        (out / m).mkdir()


def test_empty_and_missing_outputs_are_new(tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "absent"):
        assert guard_output(cfg(out), RunDir(str(out)), overwrite=True) is False
        assert check_output(cfg(out), RunDir(str(out))) == "new"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_directory_is_refused_and_kept(tmp_path, overwrite):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(ClipforgeError, match="not a clipforge run directory") as e:
        open_run(cfg(out), RunDir(str(out)), say=print, overwrite=overwrite)
    assert "thesis.txt" in str(e.value) and ("--overwrite clears only" in str(e.value)) == overwrite
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


def test_a_build_config_without_run_markers_is_not_a_run(tmp_path):
    """A project directory whose config.yaml is a clipforge config is still the user's: no manifest/work/stats."""
    out = tmp_path / "project"
    fake_run(out, cfg(out), markers=())
    (out / "notes.md").write_text("x")
    with pytest.raises(ClipforgeError, match="none of manifest.json, work, stats"):
        check_output(cfg(out), RunDir(str(out)), overwrite=True)
    assert (out / "notes.md").exists()


def test_a_config_yaml_that_is_not_a_build_config_is_not_a_run(tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "config.yaml").write_text("model: ViT-B-32\n")
    (out / "stats").mkdir()
    with pytest.raises(ClipforgeError, match="config.yaml is not a build config"):
        check_output(cfg(out), RunDir(str(out)), overwrite=True)


def test_a_file_is_refused(tmp_path):
    out = tmp_path / "f.txt"
    out.write_text("x")
    with pytest.raises(ClipforgeError, match="is a file"):
        check_output(cfg(out), RunDir(str(out)), overwrite=True)


def test_overwrite_clears_a_run_and_marks_the_new_one(tmp_path):
    out = tmp_path / "run"
    fake_run(out, cfg(out, balance={"seed": 3}), markers=("stats", "work"))
    (out / "manifest.json").write_text('{"status": "complete"}')
    (out / "work" / "stale").write_text("x")
    said = []
    assert open_run(cfg(out), RunDir(str(out)), say=said.append, overwrite=True) is None
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "work"]
    assert [p.name for p in (out / "work").iterdir()] == ["started.json"]
    assert any("--overwrite: deleting the earlier run" in m for m in said)
    assert check_output(cfg(out), RunDir(str(out))) == "resume"  # the marker makes it a run right away


def test_mismatch_names_the_dotted_keys(tmp_path):
    out = tmp_path / "run"
    fake_run(out, cfg(out))
    new = cfg(out, download={"fetch": {"allow_cidrs": ["127.0.0.0/8"]}, "threads": 64})
    with pytest.raises(ClipforgeError) as e:
        check_output(new, RunDir(str(out)))
    msg = str(e.value)
    assert "download.fetch.allow_cidrs ([] there, ['127.0.0.0/8'] now)" in msg
    assert "download.threads (" not in msg  # execution-only: allowed to change, not listed
    assert "--overwrite" in msg


def test_config_differences_are_sorted_dotted_keys():
    a, b = cfg("r"), cfg("r", text={"filters": {"min_chars": 3}}, stages=["text", "match"])
    assert config_differences(a, b) == [
        "stages (['text', 'match', 'download', 'dedup', 'balance'] there, ['text', 'match'] now)",
        "text.filters.min_chars (6 there, 3 now)",
    ]
    assert config_differences(a, a) == []


@pytest.mark.parametrize(
    ("key", "hint"),
    [("download.thread", "download.threads"), ("download.fetch.allow_cdirs", "download.fetch.allow_cidrs")],
)
def test_unknown_keys_get_a_did_you_mean(key, hint):
    section, name = key.rsplit(".", 1)
    data = {"input": {"path": "c"}, "output": "o", "match": {"metadata": "m"}}
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[name] = 1
    with pytest.raises(ConfigError, match=f"unknown key '{key}' \\(did you mean '{hint}'\\?\\)"):
        validate_config(BuildConfig, data, "test")


def test_a_model_check_does_not_dump_the_config():
    with pytest.raises(ConfigError) as e:
        validate_config(BuildConfig, {"input": {"path": "x"}, "output": "y"}, "test")
    assert str(e.value) == "invalid config in test: match.metadata is required when the match stage runs."


def test_foresight_uses_the_fetchers_own_ranges_without_dns():
    urls = [
        "http://127.0.0.1:8000/a.jpg",
        "http://localhost/b.jpg",
        "http://10.1.2.3/c.jpg",
        "http://[::1]/d.jpg",
        "ftp://8.8.8.8/e.jpg",
        "http://metadata/f.jpg",
        "http://images.example.com/g.jpg",  # needs DNS: not judged
        "http://8.8.8.8/h.jpg",  # public literal: allowed
    ]
    refused, unknown = foresee_refusals(urls, FetchConfig())
    assert refused == {
        "forbidden_address: loopback": 3,
        "forbidden_address: private": 1,
        "bad_scheme": 1,
        "forbidden_address: blocked hostname": 1,
    }
    assert unknown == 1
    refused, _ = foresee_refusals(urls, FetchConfig(allow_cidrs=["127.0.0.0/8", "::1/128"]))
    assert "forbidden_address: loopback" not in refused


def test_foresight_warns_only_when_every_sampled_url_is_refused():
    loopback = [f"http://127.0.0.1:9/{i}.jpg" for i in range(5)]
    line, warning = foresight_lines(loopback, FetchConfig())
    assert line.startswith("5 URLs sampled: 5 would be refused") and "allow_cidrs" in warning
    assert foresight_lines(loopback, FetchConfig(allow_cidrs=["127.0.0.0/8"]))[1] is None
    assert foresight_lines([*loopback, "http://example.com/x.jpg"], FetchConfig())[1] is None


def test_format_funnel_says_how_many_reasons_it_left_out():
    rows = [{"stage": "download", "reason": f"r{i:02d}", "rows": 20 - i} for i in range(18)]
    text = format_funnel({"input_rows": 500, "kept": 100, "by_reason": rows}, top=15)
    assert "r14" in text and "r15" not in text
    assert text.splitlines()[-1] == "  +3 more reasons (12 rows): stats/funnel.json lists them all"
    assert "more reasons" not in format_funnel({"input_rows": 500, "kept": 100, "by_reason": rows[:15]})
