"""The shipped cluster configs, checked offline: the AWS cluster launcher YAML against Ray's own schema, the KubeRay
manifests against a checked-in subset of the KubeRay v1.7.0 CRDs (and their embedded clipforge configs against
clipforge's own models), and the Dockerfile's installs against constraints.txt."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config
from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[3]
AWS = ROOT / "infra" / "cluster" / "aws.yaml"
K8S = sorted((ROOT / "infra" / "k8s").glob("*.yaml"))
CRD_SUBSET = json.loads((ROOT / "infra" / "k8s" / "kuberay-v1.7.0-crd-subset.json").read_text())
CONFIG_MODELS = {"build": BuildConfig, "train": TrainConfig}
SECRET = re.compile(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|AWS_SECRET_ACCESS_KEY", re.IGNORECASE)


def ray_schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def k8s_docs() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in K8S for d in yaml.safe_load_all(p.read_text()) if d]


def crd_validate(spec: dict, definition: str) -> None:
    jsonschema.validate(spec, {**CRD_SUBSET, "$ref": f"#/definitions/{definition}"})


def test_aws_yaml_matches_rays_schema_and_loads_like_ray_up():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load(AWS.read_text())
    jsonschema.validate(cfg, ray_schema())  # as written: no unknown keys anywhere
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):  # the schema does reject a misspelt key
        jsonschema.validate({**cfg, "max_worker": 3}, ray_schema())
    prepared = prepare_config(copy.deepcopy(cfg))  # with Ray's AWS defaults filled in, as `ray up` does
    assert validate_config(prepared) is None  # raises on an invalid config
    assert prepared["available_node_types"].keys() == cfg["available_node_types"].keys()
    assert prepared["max_workers"] == cfg["max_workers"]
    worker_max = sum(t.get("max_workers", 0) for t in prepared["available_node_types"].values())
    assert 0 < worker_max <= prepared["max_workers"]  # the per-type caps fit the cluster-wide cap


def test_aws_node_types():
    cfg = yaml.safe_load(AWS.read_text())
    types = cfg["available_node_types"]
    assert cfg["provider"]["type"] == "aws" and cfg["head_node_type"] == "head"
    assert types["head"]["resources"] == {"CPU": 0}
    assert types["cpu_download"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert types["gpu_train"]["node_config"]["InstanceType"].startswith(("p4", "p5", "g5", "g6"))
    assert "--gpus all" in types["gpu_train"]["docker"]["worker_run_options"]
    assert all("IamInstanceProfile" in t["node_config"] for t in types.values())  # S3 through roles, never keys
    assert not SECRET.search(AWS.read_text())


def test_kuberay_manifests_use_only_crd_fields():
    kinds = {}
    for name, doc in k8s_docs():
        kinds.setdefault(doc["kind"], []).append(name)
        if doc["kind"] == "RayCluster":
            assert doc["apiVersion"] == "ray.io/v1"
            crd_validate(doc["spec"], "RayClusterSpec")
        elif doc["kind"] == "RayJob":
            assert doc["apiVersion"] == "ray.io/v1"
            crd_validate(doc["spec"], "RayJobSpec")
            assert doc["spec"]["shutdownAfterJobFinishes"] is True
    assert kinds["RayCluster"] == ["raycluster.yaml"]
    assert sorted(kinds["RayJob"]) == ["rayjob-build.yaml", "rayjob-train.yaml"]


def test_crd_subset_catches_a_misspelt_field():
    spec = next(d for _, d in k8s_docs() if d["kind"] == "RayJob")["spec"]
    bad = {**spec, "shutdownAfterJobFinish": True}
    with pytest.raises(jsonschema.ValidationError, match="shutdownAfterJobFinish"):
        crd_validate(bad, "RayJobSpec")
    bad = copy.deepcopy(spec)
    bad["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        crd_validate(bad, "RayJobSpec")


def _cluster_specs():
    for name, doc in k8s_docs():
        if doc["kind"] == "RayCluster":
            yield name, doc["spec"]
        elif doc["kind"] == "RayJob":
            yield name, doc["spec"]["rayClusterSpec"]


def _pod_specs(cluster: dict):
    yield cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["template"]["spec"]


def test_kuberay_ray_version_and_images_agree():
    images = set()
    for name, cluster in _cluster_specs():
        assert cluster["rayVersion"] == ray.__version__, name  # the image's Ray is the pinned one
        for pod in _pod_specs(cluster):
            assert pod["serviceAccountName"] == "clipforge", name  # S3 via the service account's role
            images |= {c["image"] for c in pod["containers"]}
    assert len(images) == 1
    assert not any(SECRET.search(p.read_text()) for p in K8S)


@pytest.mark.parametrize("command", ["build", "train"])
def test_rayjob_runs_clipforge_on_a_mounted_config_that_validates(command):
    docs = {d["kind"]: d for name, d in k8s_docs() if name == f"rayjob-{command}.yaml"}
    job, config_map = docs["RayJob"], docs["ConfigMap"]
    program, cmd, path = job["spec"]["entrypoint"].split()
    assert (program, cmd) == ("clipforge", command)
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    volume = next(v for v in head["volumes"] if v.get("configMap", {}).get("name") == config_map["metadata"]["name"])
    assert Path(path).parent == Path(mounts[volume["name"]])  # the entrypoint's file is the mounted ConfigMap key
    text = config_map["data"][Path(path).name]
    validate_config(CONFIG_MODELS[command], yaml.safe_load(text), f"{config_map['metadata']['name']}")
    assert isinstance(yaml.safe_load(job["spec"]["runtimeEnvYAML"]), dict)  # a YAML mapping, as KubeRay requires


def test_dockerfile_installs_with_the_pinned_constraints():
    text = (ROOT / "Dockerfile").read_text()
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()  # join continuation lines
    assert lines[[i for i, line in enumerate(lines) if line.startswith("FROM")][0]].startswith("FROM python:3.11")
    installs = [part for line in lines for part in re.split(r"&&", line) if "pip install" in part]
    project_installs = [p for p in installs if '"pip==' not in p]
    assert len(project_installs) >= 1
    assert all("-c constraints.txt" in p for p in project_installs), project_installs
    copy_pins = next(i for i, line in enumerate(lines) if line.startswith("COPY") and "constraints.txt" in line)
    first_install = next(i for i, line in enumerate(lines) if "pip install" in line and "-c constraints.txt" in line)
    assert copy_pins < first_install
    assert "scripts/sysdeps.sh" in text and not SECRET.search(text)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)
