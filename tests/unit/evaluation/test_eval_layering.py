"""Layering: importing every evaluation module never imports Ray (only `evaluate_on_ray` does, when called)."""

import json
import subprocess
import sys

PROBE = """
import importlib, json, pkgutil, sys
import evaluation
names = [m.name for m in pkgutil.walk_packages(evaluation.__path__, "evaluation.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "ray": sorted(m for m in sys.modules if m.split(".")[0] == "ray")}))
"""


def test_evaluation_imports_no_ray():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"evaluation.zeroshot", "evaluation.run", "evaluation.wds"} <= set(report["modules"])
    assert report["ray"] == []
