"""RAY_ADDRESS set to the dashboard URL (what `clipforge submit` takes) is one line and exit 2 for local commands,
checked before Ray is imported or anything connects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import ClipforgeError
from pipeline.core.ray_setup import check_ray_address, init_ray

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("value", ["http://127.0.0.1:8265", "HTTPS://127.0.0.1:443"])
def test_dashboard_url_in_ray_address_is_refused(monkeypatch, value):
    monkeypatch.setenv("RAY_ADDRESS", value)
    with pytest.raises(ClipforgeError, match=rf"^RAY_ADDRESS='{value}' is a Ray dashboard URL, .*clipforge submit"):
        init_ray()


def test_gcs_and_client_addresses_pass(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    check_ray_address()
    for value in ("127.0.0.1:6379", "ray://127.0.0.1:10001", "auto"):
        monkeypatch.setenv("RAY_ADDRESS", value)
        check_ray_address()
    with pytest.raises(ClipforgeError, match="^address='http://127.0.0.1:8265'"):
        check_ray_address("http://127.0.0.1:8265")


def test_train_with_the_dashboard_url_exits_2_in_one_line(tmp_path):
    """What a user types after reading `submit`'s docs; the run directory is never created."""
    from tests.fixtures.training import write_synthetic_build

    build = write_synthetic_build(tmp_path / "b", n=8, shard_size=8)
    cmd = [sys.executable, "-m", "pipeline.cli", "train", "--set", f"data.manifest={build}",
           "--set", f"storage_path={tmp_path / 'runs'}", "--set", "model.name=clipforge-debug"]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": "http://127.0.0.1:8265"}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: RAY_ADDRESS='http://127.0.0.1:8265' is a")
    assert "unset RAY_ADDRESS" in res.stderr and not (tmp_path / "runs").exists()
