"""The build's robots.txt pre-pass (`build_images.robots_once`): one fetch per origin of the rows to download,
committed as work/robots.parquet, reused by a resumed run; and the download stage reads it instead of fetching."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from pipeline.build_config import BuildConfig
from pipeline.build_images import robots_once
from pipeline.core.config import validate_config
from pipeline.rundir import RunDir
from pipeline.stages.download import DownloadConfig, FetchImagesConfig, FetchImagesStage, load_robots


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths.append(self.path)
        code, body = (200, b"User-agent: *\nDisallow: /private\n") if self.server.ok else (503, b"down")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def origins():
    servers = []
    for ok in (True, False):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.daemon_threads, srv.ok, srv.lock, srv.paths = True, ok, threading.Lock(), []
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    yield servers
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_one_fetch_per_origin_committed_and_reused(origins, tmp_path):
    good, down = (f"http://127.0.0.1:{s.server_address[1]}" for s in origins)
    urls = pa.chunked_array([[f"{good}/a.png", f"{good}/private/b.png", f"{down}/c.png", f"{good}/d.png"]])
    data = {"input": {"path": "unused"}, "output": str(tmp_path / "run"), "stages": ["text", "match", "download"]}
    data["match"] = {"metadata": "unused"}
    data["download"] = {"fetch": {"allow_cidrs": ["127.0.0.0/8"], "retries": 0, "deadline_s": 2.0}}
    cfg = validate_config(BuildConfig, data, "test")
    lines: list[str] = []
    uri = robots_once(cfg, RunDir(cfg.output), urls, lines.append)
    assert [s.paths for s in origins] == [["/robots.txt"], ["/robots.txt"]]
    states = {f.origin: str(f.state) for f in load_robots(uri)}
    assert states == {good: "rules", down: "disallow_all"}
    assert lines == ["robots.txt: 2 origins: 1 disallow_all, 1 rules"]
    assert robots_once(cfg, RunDir(cfg.output), urls, lines.append) == uri  # a resumed run: no new fetch
    assert [len(s.paths) for s in origins] == [1, 1]
    # the download stage decides from the committed table: no robots.txt request of its own
    stage_cfg = FetchImagesConfig(download=DownloadConfig(fetch=cfg.download.fetch), robots_file=uri)
    out = FetchImagesStage(stage_cfg)(pa.table({"uid": ["p", "c"], "url": [f"{good}/private/b.png", f"{down}/c.png"]}))
    assert out["reject_reason"].to_pylist() == ["robots_disallowed", "robots_disallowed"]
    assert "disallows /private/b.png" in out["reject_detail"][0].as_py()
    assert "unreachable (http_5xx 503)" in out["reject_detail"][1].as_py()
    assert [len(s.paths) for s in origins] == [1, 1]
