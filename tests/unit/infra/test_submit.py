"""infra.submit without a cluster: config validation first, the job package, entrypoint, runtime_env, addresses,
log following against a fake client, and the CLI surface of `clipforge submit`."""

from __future__ import annotations

import socket
import zipfile
from types import SimpleNamespace

import pytest
import typer.main
import yaml

from evaluation.config import EvalConfig
from infra import submit as jobs
from pipeline.app.configs import resolve_config
from pipeline.build_config import BuildConfig
from pipeline.cli import app, main
from pipeline.core.config import load_config
from pipeline.core.errors import ClipforgeError
from training.config import TrainConfig


@pytest.fixture
def build_yaml(tmp_path):
    p = tmp_path / "build.yaml"
    p.write_text("input: {path: /data/c.parquet}\noutput: s3://bucket/run1\nstages: [text]\n")
    return p


def test_bad_config_exits_2_before_contacting_the_cluster(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: {path: x.parquet}\noutput: out\nnope: 1\n")
    monkeypatch.setattr(jobs, "connect", lambda address: pytest.fail("contacted the cluster"))
    with pytest.raises(SystemExit) as e:
        main(["submit", "build", str(bad), "--address", "http://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown key 'nope'" in err and str(bad) in err and "Traceback" not in err


def test_resolved_config_is_what_the_job_loads(build_yaml, tmp_path):
    text = resolve_config("build", build_yaml, ["balance.seed=7"])
    shipped = tmp_path / jobs.JOB_CONFIG_NAME
    shipped.write_text(text)
    assert load_config(BuildConfig, shipped) == load_config(BuildConfig, build_yaml, ["balance.seed=7"])
    assert yaml.safe_load(text)["balance"]["seed"] == 7


@pytest.mark.parametrize(
    ("command", "model", "key"),
    [("train", TrainConfig, ("data", "batch_size")), ("eval", EvalConfig, ("model",))],
)
def test_train_and_eval_configs_resolve_from_defaults(command, model, key, tmp_path):
    text = resolve_config(command, None, [])
    shipped = tmp_path / jobs.JOB_CONFIG_NAME
    shipped.write_text(text)
    assert load_config(model, shipped) == model()  # the job loads exactly the defaults back
    written, default = yaml.safe_load(text), model().model_dump()
    for part in key:  # a key of each is written out explicitly, with its default value
        written, default = written[part], default[part]
    assert default is not None and written == default


def test_unknown_command_is_an_error():
    with pytest.raises(ClipforgeError, match="unknown command 'report'"):
        resolve_config("report", None, [])


def test_working_dir_package_ships_the_checkout_and_the_config(tmp_path):
    project = tmp_path / "checkout"
    shipped = ["pyproject.toml", "pipeline/cli.py", "configs/models/tiny.json"]
    left_out = [".venv/bin/python", ".git/HEAD", "pipeline/__pycache__/cli.pyc", "bench-out/big.bin", "ignored/x"]
    for rel in shipped + left_out + ["notes.whl", "extra/skip.txt"]:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(rel)
    (project / ".gitignore").write_text("ignored/\n")
    spec = jobs.JobSpec(command="build", config_yaml="output: x\n", project_dir=project, excludes=["extra/"])
    out = tmp_path / "pkg"
    out.mkdir()
    with zipfile.ZipFile(jobs.write_package(spec, out)) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        assert zf.read(jobs.JOB_CONFIG_NAME) == b"output: x\n"
    assert {"pyproject.toml", "pipeline/cli.py", "configs/models/tiny.json", jobs.JOB_CONFIG_NAME} <= names
    assert not {n for n in names if n.split("/")[0] in {".venv", ".git", "bench-out", "ignored", "extra"}}
    assert not {n for n in names if n.endswith((".pyc", ".whl"))}


def test_installed_package_is_only_the_config(tmp_path):
    spec = jobs.JobSpec(command="eval", config_yaml="model: x\n", mode="installed")
    with zipfile.ZipFile(jobs.write_package(spec, tmp_path)) as zf:
        assert zf.namelist() == [jobs.JOB_CONFIG_NAME]  # at the root: Ray would strip a lone top-level directory


def test_working_dir_package_refuses_a_checkout_holding_a_job_config(tmp_path):
    (tmp_path / jobs.JOB_CONFIG_NAME).write_text("x: 1\n")
    spec = jobs.JobSpec(command="build", config_yaml="", project_dir=tmp_path)
    with pytest.raises(jobs.SubmitError, match="would shadow"):
        jobs.write_package(spec, tmp_path)


def test_entrypoint_and_runtime_env(tmp_path):
    spec = jobs.JobSpec(command="train", config_yaml="", env_vars={"A": "1", "PYTHONUNBUFFERED": "0"}, pip=["x==1"])
    assert jobs.entrypoint(spec) == "python -m pipeline.cli train clipforge-job.yaml"
    installed = jobs.JobSpec(command="build", config_yaml="", mode="installed")
    assert jobs.entrypoint(installed) == "clipforge build clipforge-job.yaml"
    env = jobs.runtime_env(spec, tmp_path / "p.zip")
    assert env["working_dir"] == str(tmp_path / "p.zip") and env["pip"] == ["x==1"]
    assert env["env_vars"] == {**jobs.DEFAULT_JOB_ENV, "A": "1", "PYTHONUNBUFFERED": "0"}
    assert "pip" not in jobs.runtime_env(installed, tmp_path / "p.zip")


def test_installed_mode_and_a_working_dir_exclude_each_other(tmp_path):
    with pytest.raises(jobs.SubmitError, match="not both"):
        jobs.JobSpec(command="build", config_yaml="", mode="installed", project_dir=tmp_path)


def test_parse_env():
    assert jobs.parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(jobs.SubmitError, match="bad --env 'NOVALUE'"):
        jobs.parse_env(["NOVALUE"])


def test_address_precedence(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(jobs.SubmitError, match="no cluster address"):
        jobs.normalise_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://env:8265")
    assert jobs.normalise_address(None) == "http://env:8265"
    assert jobs.normalise_address("head:8265") == "http://head:8265"  # --address wins; host:port is HTTP
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "https://api:443")
    assert jobs.normalise_address(None) == "https://api:443"
    with pytest.raises(jobs.SubmitError, match="Ray Client address"):
        jobs.normalise_address("ray://head:10001")


def test_unreachable_cluster_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:9")  # must not override the explicit address either
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(jobs.SubmitError, match=f"cannot reach the Ray job server at http://127.0.0.1:{port}"):
        jobs.connect(f"127.0.0.1:{port}")


class FakeClient:
    """The slice of JobSubmissionClient that follow/wait use."""

    def __init__(self, statuses, chunks=(), drop=False):
        self.statuses, self.chunks, self.drop = list(statuses), list(chunks), drop

    def get_job_info(self, job_id):
        if job_id != "raysubmit_1":
            raise RuntimeError("Request failed with status code 404: Job does not exist.")
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return SimpleNamespace(status=SimpleNamespace(value=status))

    async def tail_job_logs(self, job_id):
        for c in self.chunks:
            yield c
        if self.drop:
            raise RuntimeError("Websocket connection closed unexpectedly")


def test_follow_streams_logs_and_returns_the_final_status():
    out = []
    status = jobs.follow(FakeClient(["RUNNING", "SUCCEEDED"], ["a\n", "b\n"]), "raysubmit_1", out.append)
    assert out == ["a\n", "b\n"] and status == "SUCCEEDED" and jobs.exit_code(status) == 0


def test_follow_survives_a_dropped_log_stream(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    out = []
    client = FakeClient(["RUNNING", "RUNNING", "RUNNING", "FAILED"], ["a\n"], drop=True)
    status = jobs.follow(client, "raysubmit_1", out.append)
    assert status == "FAILED" and jobs.exit_code(status) == 1 and "log stream ended early" in out[-1]


def test_unknown_job_is_a_submit_error():
    with pytest.raises(jobs.SubmitError, match="no job 'raysubmit_x'"):
        jobs.job_info(FakeClient(["RUNNING"]), "raysubmit_x")


def test_cli_has_the_submit_commands():
    group = typer.main.get_command(app).commands["submit"]
    assert set(group.commands) == {"build", "train", "eval", "status", "logs", "stop", "list"}


def test_submit_without_address_exits_2(monkeypatch, capsys, build_yaml):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["submit", "build", str(build_yaml)])
    assert e.value.code == 2 and "no cluster address" in capsys.readouterr().err
