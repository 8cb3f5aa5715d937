"""WebConfig: defaults, range checks, loopback-only base_url, load_config errors naming the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.localweb.config import WebConfig
from pipeline.core.config import ConfigError, load_config


def test_defaults_are_valid_and_loopback():
    cfg = WebConfig()
    assert cfg.host == "127.0.0.1" and cfg.port == 0 and cfg.n_candidates == 2000


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"base_url": "http://10.0.0.5:8080"}, "not loopback"),
        ({"base_url": "https://127.0.0.1:8080"}, "http://HOST:PORT"),
        ({"base_url": "http://127.0.0.1"}, "explicit port"),
        ({"min_side": 300, "max_side": 200}, "min_side"),
        ({"fault_rate": 0.5, "dup_exact_rate": 0.3, "dup_near_rate": 0.3}, "must be < 1"),
        ({"junk_rate": 0.6, "foreign_rate": 0.6}, "junk_rate"),
        ({"n_candidates": 0}, "n_candidates"),
    ],
)
def test_bad_values_are_rejected(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        WebConfig(**kwargs)


def test_non_loopback_needs_explicit_permission():
    assert WebConfig(base_url="http://10.0.0.5:8080", allow_non_loopback=True).host == "10.0.0.5"


def test_load_config_names_the_bad_key(tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text("seed: 3\nn_candidatez: 10\n")
    with pytest.raises(ConfigError, match="unknown key 'n_candidatez'"):
        load_config(WebConfig, path)
    cfg = load_config(WebConfig, None, ["n_candidates=500", "zipf_a=1.3"])
    assert (cfg.n_candidates, cfg.zipf_a) == (500, 1.3)
