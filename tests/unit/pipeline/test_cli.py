"""The CLI surface: subcommands listed, --version, not-yet-implemented commands exit 2 and say so."""

import subprocess
import sys

import pytest

from pipeline import __version__
from pipeline.cli import app

SUBCOMMANDS = ["extract", "build", "train", "eval", "report", "stats", "demo", "submit", "metadata", "web", "s3"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_subcommand():
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    for name in SUBCOMMANDS:
        assert f" {name} " in out.stdout or f" {name}\n" in out.stdout, (name, out.stdout)


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"clipforge {__version__}"


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("clipforge") or str(__import__("pathlib").Path(sys.executable).parent / "clipforge")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "clipforge" in out.stdout


def test_unknown_subcommand_is_a_usage_error():
    out = run_cli("frobnicate")
    assert out.returncode == 2 and "No such command" in out.stderr


def test_app_object_has_all_commands():
    import typer.main

    group = typer.main.get_command(app)
    assert set(SUBCOMMANDS) <= set(group.commands)


@pytest.mark.parametrize(
    "yaml_text,expect",
    [
        ("n_candidates: 10\nnope: 1\n", "unknown key 'nope'"),
        ("n_candidates: lots\n", "key 'n_candidates'"),
    ],
)
def test_config_errors_exit_2_with_one_paragraph(tmp_path, yaml_text, expect):
    cfg = tmp_path / "web.yaml"
    cfg.write_text(yaml_text)
    out = run_cli("web", "generate", str(tmp_path / "out"), str(cfg))
    assert out.returncode == 2, out
    assert expect in out.stderr and str(cfg) in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "candidates.parquet").exists()


def test_missing_config_file_exits_2(tmp_path):
    out = run_cli("web", "generate", str(tmp_path / "out"), str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_bad_override_exits_2(tmp_path):
    out = run_cli("web", "generate", str(tmp_path / "out"), "--set", "n_candidates=-5")
    assert out.returncode == 2 and "n_candidates" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("url", ["ftp://x", "http://", "localhost:9000", "http://h:99999", "http://h:9000/bucket"])
def test_demo_bad_s3_endpoint_exits_2_before_any_work(tmp_path, url):
    out = run_cli("demo", "--workdir", str(tmp_path / "w"), "--s3-endpoint", url)
    assert out.returncode == 2 and "--s3-endpoint" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "w").exists()  # refused before the web, metadata or Ray


def test_demo_s3_endpoint_is_normalised_and_keeps_the_environment(monkeypatch):
    from pipeline.app.demo import check_endpoint, endpoint_env

    assert check_endpoint(" http://127.0.0.1:9000/ ") == "http://127.0.0.1:9000"
    assert check_endpoint("https://s3.example.internal") == "https://s3.example.internal"
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    monkeypatch.delenv("AWS_RESPONSE_CHECKSUM_VALIDATION", raising=False)
    env = endpoint_env("http://127.0.0.1:9000")
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_supported"  # the user's setting wins
    assert env["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"
    assert not any(k.startswith("AWS_ACCESS") or k.startswith("AWS_SECRET") for k in env)


def test_demo_from_list_builds_from_the_candidate_list(monkeypatch, tmp_path):
    """`--from-list` reaches the demo (which then builds from web/candidates.parquet, today's path); by default the
    demo extracts its web's crawl and builds from the extract's candidates."""
    from typer.testing import CliRunner

    import pipeline.app.demo as demo

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda **kw: calls.append(kw))
    for extra, from_list in (([], False), (["--from-list"], True)):
        out = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path), *extra])
        assert out.exit_code == 0, out.output
        assert calls.pop()["from_list"] is from_list
    for extra, languages in (([], demo.DEMO_LANGUAGES), (["--languages", "en"], ("en",))):
        out = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path), *extra])
        assert out.exit_code == 0, out.output
        assert tuple(calls.pop()["languages"]) == languages
    web, meta = tmp_path / "web", tmp_path / "metadata.json"
    cfg = demo.demo_build_config(web, meta, str(tmp_path / "run"), 600)
    assert cfg.input.path == str(web / "candidates.parquet")
    cfg = demo.demo_build_config(web, meta, str(tmp_path / "run"), 600, input_path=tmp_path / "extract/candidates")
    assert cfg.input.path == str(tmp_path / "extract" / "candidates")


def test_demo_metadata_is_a_worldwide_directory_rebuilt_for_other_languages(tmp_path):
    import pipeline.app.demo as demo
    from curation.metadata_worldwide import metadata_lists

    assert demo.DEMO_LANGUAGES[0] == "en" and "th" not in demo.DEMO_LANGUAGES and len(demo.DEMO_LANGUAGES) == 8
    path = demo.demo_metadata(tmp_path, ["ja", "ar"])
    assert path == tmp_path / "metadata" and sorted(metadata_lists(path)) == ["ar", "ja"]
    mtime = (path / "ja.json").stat().st_mtime_ns
    assert demo.demo_metadata(tmp_path, ["ar", "ja"]) == path and (path / "ja.json").stat().st_mtime_ns == mtime
    demo.demo_metadata(tmp_path, ["ja"])  # other languages: rebuilt, nothing of the old set stays behind
    assert sorted(metadata_lists(path)) == ["ja"]
