"""Model loading: local-dir exports load back bit-identically; a name + weights file; clear errors otherwise."""

import json

import pytest
import torch

from evaluation.errors import EvaluationError
from evaluation.models import export_local_dir, load_model, register_model_configs


def _same_outputs(a, b):
    x = torch.zeros(2, 3, 64, 64).uniform_(generator=torch.Generator().manual_seed(0))
    t = torch.randint(0, 49408, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.encode_image(x), b.encode_image(x)) and torch.equal(a.encode_text(t), b.encode_text(t))


def test_our_configs_register_idempotently():
    import open_clip

    assert "clipforge-tiny" in register_model_configs() and "clipforge-tiny" in register_model_configs()
    cfg = open_clip.get_model_config("clipforge-tiny")
    assert cfg["vision_cfg"]["image_size"] == 64 and cfg["embed_dim"] == 64


def test_local_dir_export_has_open_clip_format_and_loads_identically(tiny_local_dir):
    config = json.loads((tiny_local_dir / "open_clip_config.json").read_text())
    assert set(config) == {"model_cfg", "preprocess_cfg"} and config["model_cfg"]["embed_dim"] == 64
    assert config["preprocess_cfg"]["mean"][0] == pytest.approx(0.48145466)
    assert (tiny_local_dir / "open_clip_model.safetensors").is_file()
    a = load_model(f"local-dir:{tiny_local_dir}", device="cpu")
    b = load_model(f"local-dir:{tiny_local_dir}", device="cpu")
    assert not a.random_init and a.device == "cpu" and _same_outputs(a.model, b.model)
    assert a.tokenizer(["a photo"]).shape == (1, 32)
    assert not a.model.training


def test_name_plus_weights_file(tiny_local_dir, tmp_path):
    ref = load_model(f"local-dir:{tiny_local_dir}", device="cpu")
    pt = tmp_path / "epoch_1.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.model.state_dict().items()}}, pt)  # DDP-style
    for path in (pt, tiny_local_dir / "open_clip_model.safetensors"):
        lm = load_model("clipforge-tiny", str(path), device="cpu")
        assert lm.checkpoint == str(path) and not lm.random_init and _same_outputs(lm.model, ref.model)
    assert load_model("clipforge-tiny", device="cpu").random_init


def test_reexport_round_trip(tiny_local_dir, tmp_path):
    import open_clip

    lm = load_model(f"local-dir:{tiny_local_dir}", device="cpu")
    out = export_local_dir(lm.model, open_clip.get_model_config("clipforge-tiny"), tmp_path / "again")
    assert _same_outputs(load_model(f"local-dir:{out}", device="cpu").model, lm.model)


def test_load_errors_name_the_path(tmp_path, tiny_local_dir):
    with pytest.raises(EvaluationError, match="does not exist"):
        load_model(f"local-dir:{tmp_path / 'missing'}")
    with pytest.raises(EvaluationError, match="no open_clip_config.json"):
        load_model(f"local-dir:{tmp_path}")
    (tmp_path / "open_clip_config.json").write_text((tiny_local_dir / "open_clip_config.json").read_text())
    with pytest.raises(EvaluationError, match="no weights file"):
        load_model(f"local-dir:{tmp_path}")
    with pytest.raises(EvaluationError, match="unknown model 'ViT-Q-99'"):
        load_model("ViT-Q-99")
    with pytest.raises(EvaluationError, match="does not exist"):
        load_model("clipforge-tiny", str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {"visual.proj": torch.zeros(3)}}, bad)
    with pytest.raises(EvaluationError, match="could not load model"):
        load_model("clipforge-tiny", str(bad))


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = load_model("clipforge-tiny", device="cpu", seed=0)
    assert torch.equal(torch.rand(1), before)
    assert _same_outputs(a.model, load_model("clipforge-tiny", device="cpu", seed=0).model)
    assert not _same_outputs(a.model, load_model("clipforge-tiny", device="cpu", seed=1).model)
