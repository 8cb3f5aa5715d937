"""Layering: `curation/` is pure — importing every one of its modules never imports Ray."""

import json
import subprocess
import sys

# Imports every module under curation/ in a fresh interpreter, then reports them and any Ray module loaded.
PROBE = """
import importlib, json, pkgutil, sys
import curation
names = [m.name for m in pkgutil.walk_packages(curation.__path__, "curation.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "ray": sorted(m for m in sys.modules if m.split(".")[0] == "ray")}))
"""


def _probe(prefix: str = "") -> dict:
    out = subprocess.run([sys.executable, "-c", prefix + PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_curation_never_imports_ray():
    report = _probe()
    expected = {"curation.text", "curation.langid", "curation.metadata", "curation.matching", "curation.balancing"}
    assert expected <= set(report["modules"]), report["modules"]
    assert report["ray"] == [], f"curation imported Ray: {report['ray']}"


def test_the_probe_notices_ray():
    assert _probe("import sys; sys.modules['ray'] = sys\n")["ray"] == ["ray"]
