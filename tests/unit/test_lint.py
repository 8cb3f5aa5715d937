"""ruff (line length 119, import order, bugbear, pyupgrade) is clean over the project's code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    dirs = ["pipeline", "curation", "training", "evaluation", "infra", "tests", "benchmarks"]
    out = subprocess.run(
        [str(ruff), "check", "--output-format", "concise", *dirs], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-4000:]
