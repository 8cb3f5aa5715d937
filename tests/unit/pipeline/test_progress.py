"""Progress while a build runs (#18 item 6): a heartbeat line per step at least every interval, with done/total, rate
and ETA once the step tracks what it commits; `clipforge stats` on an unfinished run lists what is committed."""

import json
import threading
import time

from pipeline.stats import run_progress
from pipeline.steps import Heartbeat


def test_a_heartbeat_says_the_step_and_its_time_every_interval():
    lines: list[str] = []
    with Heartbeat(lines.append, "text", interval=0.05):
        time.sleep(0.3)
    assert len(lines) >= 3 and all(line.startswith("text: running for ") for line in lines)


def test_a_tracked_step_reports_done_total_rate_and_eta():
    done = [0]
    lines: list[str] = []
    with Heartbeat(lines.append, "download", interval=3600) as beat:
        beat._t0 -= 75  # the step has run for 75 s, 60 s of them tracked
        beat.track(lambda: (done[0], 40, "parts"))
        beat._tracked_at -= 60
        done[0] = 10  # 10 parts in 60 s: 10 parts/min, 30 to go
        line = beat.line()
    assert line == "download: running for 1m15s; 10/40 parts (25%), 10.0 parts/min, ETA 3m00s"
    assert lines == [], "nothing printed before the first interval"


def test_a_failing_progress_read_never_stops_the_step():
    lines: list[str] = []
    event = threading.Event()

    def broken():
        event.set()
        raise OSError("listing failed")

    with Heartbeat(lines.append, "shards", interval=0.02) as beat:
        beat.progress = broken
        assert event.wait(2)
    assert lines == []


def test_stats_of_an_unfinished_run_lists_what_is_committed(tmp_path):
    work = tmp_path / "work"
    (work / "download").mkdir(parents=True)
    (work / "shards").mkdir()
    (work / "started.json").write_text("{}")
    assert run_progress(str(tmp_path)) == [
        f"{tmp_path} is a build in progress (or killed: re-run the same command to resume); committed so far:",
        "  text + match: running, nothing committed yet",
    ]
    (work / "matched.done").write_text(json.dumps({"rows": 1500}))
    (work / "selected.done").write_text(json.dumps({"rows": 1100}))
    (work / "download_plan.json").write_text(json.dumps({"parts": 8, "rows": 640}))
    for part in (0, 3, 5):
        (work / "download" / f"part-{part:06d}.parquet").write_bytes(b"")
    (work / "download" / "part-000007.parquet.tmp-123").write_bytes(b"")  # a killed writer's temp file
    (tmp_path / "dedup").mkdir()
    (tmp_path / "dedup" / "exact.json").write_text("{}")
    lines = run_progress(str(tmp_path))
    assert lines[1:] == [
        "  text + match: 1500 input rows checkpointed",
        "  pre_balance: 1100 rows checkpointed",
        "  download: 3/8 parts committed (640 rows to download in all)",
        "  dedup: exact done",
    ]


def test_stats_of_a_finished_run_or_a_stranger_is_not_progress(tmp_path):
    assert run_progress(str(tmp_path)) is None
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "started.json").write_text("{}")
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / "funnel.json").write_text("{}")
    assert run_progress(str(tmp_path)) is None
