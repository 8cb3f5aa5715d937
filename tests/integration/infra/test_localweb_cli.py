"""`clipforge web generate` then `clipforge web serve` as separate processes, fetching over loopback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from PIL import Image

from infra.localweb.handle import LocalWebProcess

pytestmark = pytest.mark.timeout(180)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "web", *args], capture_output=True, text=True, timeout=timeout
    )


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cliweb")
    done = _cli("generate", str(out), "--set", "n_candidates=300", "--set", "eval_per_concept=1", "--set", "seed=5")
    assert done.returncode == 0, done.stderr
    assert "wrote 300 candidates" in done.stdout and "eval split: 74 images" in done.stdout
    base = json.loads((out / "web.json").read_text())["base_url"]
    assert f"base_url: {base}" in done.stdout
    return out


def _first_ok(web_dir: Path) -> dict:
    return next(r for r in pq.read_table(web_dir / "answers.parquet").to_pylist() if r["fault"] == "ok")


def test_serve_prints_its_url_serves_an_image_and_stops_on_ctrl_c(web_dir):
    row = _first_ok(web_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "web", "serve", str(web_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        base = json.loads((web_dir / "web.json").read_text())["base_url"]
        assert f"serving {web_dir} at {base}" in line, line
        with _http() as http:
            resp = http.get(row["url"], timeout=30, allow_redirects=False)
        assert resp.status_code == 200
        assert Image.open(__import__("io").BytesIO(resp.content)).size == (row["width"], row["height"])
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_child_process_handle(web_dir):
    row = _first_ok(web_dir)
    with LocalWebProcess(web_dir, prewarm=10) as web, _http() as http:
        assert row["url"].startswith(web.base_url)
        assert http.get(f"{web.base_url}/healthz", timeout=30).text == "ok\n"
        assert http.get(row["url"], timeout=30).status_code == 200


def test_busy_port_is_a_clear_error(web_dir):
    port = json.loads((web_dir / "web.json").read_text())["config"]["base_url"].rsplit(":", 1)[1]
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT from a test above
        blocker.bind(("127.0.0.1", int(port)))
        blocker.listen()
        done = _cli("serve", str(web_dir))
    assert done.returncode == 2 and "cannot serve the synthetic web" in done.stderr and "Traceback" not in done.stderr


def test_user_errors_exit_2_with_one_line(tmp_path):
    bad_key = _cli("generate", str(tmp_path), "--set", "n_candidatez=5")
    assert bad_key.returncode == 2 and "unknown key 'n_candidatez'" in bad_key.stderr
    missing = _cli("serve", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "clipforge web generate" in missing.stderr
    assert "Traceback" not in bad_key.stderr + missing.stderr
