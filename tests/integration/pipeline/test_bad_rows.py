"""#18 item 8: CSV/TSV rows that do not parse. `input.on_bad_rows: error` (the default) stops the build with the
file, line and row named — from preflight when the row is in the first block, from the read when it is further
on — and `skip` keeps going, every such row in rejects/ as `bad_row` with its file, line and text, counted in the
funnel and the accounting. Run in process on the session Ray, through the CLI's entry point."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main

GOOD = 3000
PAD = "p" * 800  # 3,000 rows of ~850 B: pyarrow reads 1 MiB blocks (one ahead), so preflight misses the late row


def write_csv(path, bad_at: list[int], sep: str = ",") -> list[str]:
    """A CSV with `GOOD` good rows and a bad one (an extra field) before each index in `bad_at`; the bad lines."""
    lines, bad = [sep.join(["url", "caption", "id", "pad"])], []
    for i in range(GOOD):
        if i in bad_at:
            row = sep.join([f"http://127.0.0.1:9/x{i}.jpg", "a red circle", "extra", str(i), PAD])
            lines.append(row)
            bad.append(row)
        lines.append(sep.join([f"http://127.0.0.1:9/{i}.jpg", f"a red circle number {i}", str(i), PAD]))
    path.write_text("\n".join(lines) + "\n")
    return bad


def run_cli(capsys, tmp_path, cands, *extra: str) -> tuple[int, str, str]:
    (tmp_path / "metadata.json").write_text(json.dumps(["red", "circle"]))
    sets = [f"input.path={cands}", f"match.metadata={tmp_path / 'metadata.json'}", f"output={tmp_path / 'run'}"]
    sets += ["stages=[text,match]", *extra]
    with pytest.raises(SystemExit) as e:
        main(["build", "configs/base.yaml", "-q", *[a for s in sets for a in ("--set", s)]])
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.mark.parametrize("where", ["first block", "late"])
def test_a_bad_row_stops_the_build_naming_file_and_line(ray_local, tmp_path, capsys, where):
    cands = tmp_path / "candidates.csv"
    at = 5 if where == "first block" else GOOD - 10
    write_csv(cands, [at])
    code, _, err = run_cli(capsys, tmp_path, cands)
    assert code == 2, err
    line = at + 2  # the header is line 1
    assert f"input row does not parse: {cands} line {line}: expected 4 columns, got 5" in err, err
    assert "set input.on_bad_rows=skip" in err and "Traceback" not in err
    if where == "first block":  # preflight: nothing written
        assert not (tmp_path / "run").exists()
    else:  # the read: the run was opened, and the message says how to resume once the file is fixed
        assert "The build stopped;" in err and "Resume with the same command" in err
        assert "ray::" not in err and "File " not in err and err.startswith("error: input row does not parse")


def test_skip_keeps_bad_rows_in_rejects_and_counts_them(ray_local, tmp_path, capsys):
    cands = tmp_path / "candidates.tsv"
    bad = write_csv(cands, [7, GOOD - 10], sep="\t")
    code, out, err = run_cli(capsys, tmp_path, cands, "input.on_bad_rows=skip")
    assert code == 0, err
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["counts"]["input_rows"] == GOOD + 2
    rejects = pq.read_table(run / "rejects").to_pylist()
    bad_rejects = [r for r in rejects if r["reason"] == "bad_row"]
    assert len(bad_rejects) == 2 and {r["stage"] for r in bad_rejects} == {"text"}
    for row in bad:  # each bad row's text is kept whole, with its file and line
        assert sum(r["detail"].endswith(": expected 4 columns, got 5: " + row) for r in bad_rejects) == 1
    assert all(r["detail"].startswith(str(cands)) for r in bad_rejects)
    assert len({r["uid"] for r in bad_rejects}) == 2
    funnel = json.loads((run / "stats" / "funnel.json").read_text())
    assert {"stage": "text", "reason": "bad_row", "rows": 2} in funnel["by_reason"]
    assert funnel["kept"] + funnel["rejected"] == GOOD + 2
    # the good rows' own column is carried, as strings
    kept = pq.read_table(run / "curated")
    assert kept.num_rows == funnel["kept"] > 0 and kept.schema.field("id").type == "string"
