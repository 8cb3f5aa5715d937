"""TrainConfig: strict keys, cross-field checks, and the shipped train*.yaml configs."""

from pathlib import Path

import pytest
import yaml

from pipeline.core.config import ConfigError, load_config
from training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_defaults_are_valid_and_documented():
    cfg = TrainConfig()
    assert cfg.local_batch_size == cfg.data.batch_size // cfg.workers.num_workers
    # Every field carries a docstring (they become the config reference).
    for model in (TrainConfig, type(cfg.data), type(cfg.optim), type(cfg.workers), type(cfg.checkpoint)):
        missing = [n for n, f in model.model_fields.items() if not f.description]
        assert not missing, f"{model.__name__}: undocumented fields {missing}"


def test_batch_must_divide_by_workers():
    with pytest.raises(ConfigError, match="data.batch_size=30 must be divisible by workers.num_workers=4"):
        load_config(TrainConfig, None, ["data.batch_size=30", "workers.num_workers=4"])


def test_unknown_key_and_bad_name_are_named():
    with pytest.raises(ConfigError, match="unknown key 'optim.lr_max'"):
        load_config(TrainConfig, None, ["optim.lr_max=1"])
    with pytest.raises(ConfigError, match="'name'"):
        load_config(TrainConfig, None, ["name=../escape"])
    with pytest.raises(ConfigError, match="'loss.kind'"):
        load_config(TrainConfig, None, ["loss.kind=triplet"])


def _leaves(data: dict, prefix: str = "") -> dict:
    """{"a.b": value} for every non-mapping value of a nested mapping."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("train*.yaml")), ids=lambda p: p.name)
def test_shipped_train_configs_load_with_every_value_as_written(path):
    written = _leaves(yaml.safe_load(path.read_text()))
    loaded = _leaves(load_config(TrainConfig, path).model_dump())
    assert {k: loaded[k] for k in written} == written  # nothing silently coerced, clamped or replaced


def test_shipped_configs_exist():
    assert {"train.yaml", "train_cluster.yaml"} <= {p.name for p in CONFIGS.glob("train*.yaml")}
