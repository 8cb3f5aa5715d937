"""`clipforge submit` with a GCS or Ray Client address: one line naming the dashboard URL, exit 2, no connection.

Only 127.0.0.1 addresses; the GCS-port refusal happens before any socket is opened (`JobSubmissionClient` is
replaced by a stub that fails the test if called).
"""

from __future__ import annotations

import socket

import pytest

from infra import submit as jobs
from pipeline.cli import main


@pytest.fixture
def no_connection(monkeypatch):
    import ray.job_submission

    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", lambda *a, **k: pytest.fail("connected"))
    for var in jobs.ADDRESS_VARS:
        monkeypatch.delenv(var, raising=False)


def submit(args, capsys, tmp_path) -> tuple[int, str]:
    cfg = tmp_path / "build.yaml"
    cfg.write_text("input: {path: /data/c.parquet}\noutput: s3://bucket/run1\nstages: [text]\n")
    with pytest.raises(SystemExit) as e:
        main(["submit", "build", str(cfg), *args])
    return e.value.code, capsys.readouterr().err


def test_gcs_address_names_the_dashboard_url(no_connection, capsys, tmp_path):
    code, err = submit(["--address", "127.0.0.1:6379"], capsys, tmp_path)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err == (
        "error: --address '127.0.0.1:6379' is a Ray GCS (ray.init / RAY_ADDRESS) address (port 6379); job submission "
        "needs the dashboard's HTTP address: --address http://127.0.0.1:8265 (the dashboard port, 8265 by default).\n"
    )


def test_gcs_address_in_ray_address_says_where_it_came_from(no_connection, monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    with pytest.raises(
        jobs.SubmitError, match=r"^\$RAY_ADDRESS '127.0.0.1:6379' is a Ray GCS .* http://127.0.0.1:8265"
    ):
        jobs.connect(None)


def test_client_server_port_and_ray_scheme_name_the_dashboard_url(no_connection, capsys, tmp_path):
    code, err = submit(["--address", "http://127.0.0.1:10001"], capsys, tmp_path)
    assert code == 2 and "Ray Client server (ray://) address" in err and "http://127.0.0.1:8265" in err
    code, err = submit(["--address", "ray://127.0.0.1:10001"], capsys, tmp_path)
    assert code == 2 and "job submission needs the dashboard's HTTP address, e.g. http://HEAD:8265" in err


def test_unreachable_non_dashboard_port_hints_at_the_mixup(monkeypatch):
    for var in jobs.ADDRESS_VARS:
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(jobs.SubmitError, match=r"must be the dashboard's HTTP address, http://HEAD:8265 by default"):
        jobs.connect(f"127.0.0.1:{port}")


def test_dashboard_port_keeps_the_plain_message():
    assert jobs.normalise_address("127.0.0.1:8265") == "http://127.0.0.1:8265"
    assert jobs._not_dashboard("http://127.0.0.1:8265") == ""
