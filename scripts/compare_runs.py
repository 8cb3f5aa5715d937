"""Compare two finished build runs (local directories): kept uids, sidecar rows, shard bytes, rejects, stats.

    python scripts/compare_runs.py RUN_A RUN_B

Prints SAME/DIFF per artifact and exits 0 only when every one is the same. Rejects are compared as a multiset of
(uid, url, stage, reason, detail) rows (file order is Ray's), except that a `timeout` reject's detail is ignored:
which of the socket timeout and the total deadline fires first depends on the machine's load, not on the code.
Used to show that a refactor leaves a build's output unchanged (same web, same metadata, same config).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def summary(run: Path) -> dict:
    out: dict = {}
    sidecars = sorted((run / "shards").glob("*.parquet"))
    kept = pa.concat_tables([pq.read_table(p) for p in sidecars]) if sidecars else pq.read_table(run / "curated")
    out["kept uids"] = _sha("\n".join(sorted(kept["uid"].to_pylist())))
    out["kept rows"] = _sha("\n".join(sorted(json.dumps(r, sort_keys=True, default=str) for r in kept.to_pylist())))
    out["shard bytes"] = {t.name: _sha(t.read_bytes()) for t in sorted((run / "shards").glob("*.tar"))}
    rejects = pq.read_table(run / "rejects").select(["uid", "url", "stage", "reason", "detail"]).to_pylist()
    for r in rejects:
        if r["reason"] == "timeout":
            r["detail"] = None
    out["rejects"] = _sha("\n".join(sorted(json.dumps(r, sort_keys=True) for r in rejects)))
    for f in sorted((run / "stats").glob("*.npy")):
        out[f"stats/{f.name}"] = _sha(np.load(f).tobytes())
    funnel = json.loads((run / "stats" / "funnel.json").read_text())
    out["funnel"] = {"by_stage": funnel["by_stage"], "by_reason": sorted(map(json.dumps, funnel["by_reason"]))}
    return out


def main(argv: list[str]) -> int:
    a, b = (summary(Path(p)) for p in argv[1:3])
    same = True
    for key in a:
        ok = a[key] == b.get(key)
        same &= ok
        print(f"{'SAME' if ok else 'DIFF'}  {key}")
    print("IDENTICAL" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
