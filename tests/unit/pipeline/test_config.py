"""Config loading: YAML + --set overrides, strict keys and types, one-paragraph errors naming key and file."""

from pathlib import Path

import pytest

from pipeline.core.config import (
    ConfigError,
    StrictModel,
    apply_overrides,
    config_hash,
    dump_config,
    load_config,
    parse_override,
)


class Inner(StrictModel):
    lr: float = 1e-3
    """Learning rate."""
    stages: list[str] = ["text"]
    """Stages to run."""


class Outer(StrictModel):
    name: str = "run"
    """Run name."""
    steps: int = 10
    """Number of steps."""
    train: Inner = Inner()
    """Training section."""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    assert load_config(Outer) == Outer()


def test_yaml_and_overrides_are_typed(tmp_path):
    p = write(tmp_path, "name: a\ntrain:\n  lr: 0.5\n")
    cfg = load_config(Outer, p, ["steps=42", "train.lr=3e-4", "train.stages=[text,match]"])
    assert (cfg.name, cfg.steps, cfg.train.lr, cfg.train.stages) == ("a", 42, 3e-4, ["text", "match"])


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "train:\n  lrr: 0.5\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, p)
    msg = str(e.value)
    assert "unknown key 'train.lrr'" in msg and str(p) in msg and "\n" not in msg


def test_wrong_type_names_key_value_and_file(tmp_path):
    p = write(tmp_path, "steps: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, p)
    msg = str(e.value)
    assert "key 'steps'" in msg and "'many'" in msg and str(p) in msg


def test_wrong_type_from_override_mentions_override():
    with pytest.raises(ConfigError) as e:
        load_config(Outer, None, ["train.lr=fast"])
    assert "key 'train.lr'" in str(e.value) and "--set train.lr=fast" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_bad_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d"):
        load_config(Outer, write(tmp_path, "a: 1\nb: [unclosed\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(Outer, write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", ".a=1"])
def test_bad_override_syntax(bad):
    with pytest.raises(ConfigError, match="bad override"):
        parse_override(bad)


def test_override_into_scalar_is_an_error():
    with pytest.raises(ConfigError, match="'name' is a str, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_override_values_parse_as_yaml():
    assert parse_override("a=null") == (["a"], None)
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a={x: 1}") == (["a"], {"x": 1})
    assert parse_override("a=s3://b/p") == (["a"], "s3://b/p")


def test_apply_overrides_does_not_mutate_input():
    data = {"train": {"lr": 1}}
    out = apply_overrides(data, ["train.lr=2"])
    assert data == {"train": {"lr": 1}} and out == {"train": {"lr": 2}}


def test_dump_roundtrip_and_hash(tmp_path):
    cfg = load_config(Outer, None, ["steps=7"])
    p = write(tmp_path, dump_config(cfg))
    again = load_config(Outer, p)
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Outer, None, ["steps=8"])) != config_hash(cfg)


def test_docstrings_become_descriptions():
    assert Outer.model_fields["steps"].description == "Number of steps."
