"""The generated config reference is current, and configs/base.yaml loads with the required keys set."""

import pytest

from pipeline.build_config import BuildConfig
from pipeline.config_docs import ROOT, render
from pipeline.core.config import ConfigError, load_config


def test_generated_files_are_up_to_date():
    for path, text in render().items():
        assert path.read_text() == text, f"{path} is stale: run `python -m pipeline.config_docs`"


def test_base_yaml_loads_with_required_overrides():
    cfg = load_config(
        BuildConfig, ROOT / "configs" / "base.yaml", ["input.path=c.parquet", "output=run", "match.metadata=m.json"]
    )
    assert cfg == BuildConfig(input={"path": "c.parquet"}, output="run", match={"metadata": "m.json"})


def test_base_yaml_alone_names_the_missing_key():
    with pytest.raises(ConfigError, match="input.path is required"):
        load_config(BuildConfig, ROOT / "configs" / "base.yaml")
