"""Checkpoint round trip and the open_clip local-dir export (no Ray)."""

import json

import open_clip
import pyarrow.fs as pafs
import pytest
import torch

from training.checkpoint import export_model, load_checkpoint, save_checkpoint
from training.config import ModelConfig, OptimConfig
from training.model import build_model
from training.optim import build_optimizer


def _step(model, opt):
    out = model(torch.randn(4, 3, 32, 32), torch.randint(0, 100, (4, 16)))
    loss = (out["image_features"] @ out["text_features"].T).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_round_trip_restores_model_optimizer_and_progress(tmp_path):
    built = build_model(ModelConfig(name="clipforge-debug"), seed=0)
    opt = build_optimizer(built.model, OptimConfig())
    _step(built.model, opt)
    progress = {"step": 7, "epoch": 1, "batch_in_epoch": 3, "samples_seen": 224, "last_loss": 2.5}
    save_checkpoint(tmp_path, built.model, opt, progress)

    other = build_model(ModelConfig(name="clipforge-debug"), seed=1)
    other_opt = build_optimizer(other.model, OptimConfig())
    assert load_checkpoint(tmp_path, other.model, other_opt) == progress
    for a, b in zip(built.model.state_dict().values(), other.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 7


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    built = build_model(ModelConfig(name="clipforge-debug"))
    save_checkpoint(tmp_path, built.model, build_optimizer(built.model, OptimConfig()), {"step": 1})
    tiny = build_model(ModelConfig(name="clipforge-tiny")).model
    with pytest.raises(ValueError, match="does not fit model"):
        load_checkpoint(tmp_path, tiny, build_optimizer(tiny, OptimConfig()))


@pytest.mark.parametrize("loss_kind", ["clip", "siglip"])
def test_export_loads_with_open_clip_local_dir_and_embeds_identically(tmp_path, loss_kind):
    built = build_model(ModelConfig(name="clipforge-debug"), loss_kind=loss_kind, seed=5)
    built.model.eval()
    export_model(pafs.LocalFileSystem(), str(tmp_path / "export"), built.model, built.model_cfg)
    loaded, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'export'}")
    loaded.eval()
    images = torch.randn(3, 3, 32, 32)
    texts = tokenizer(["a red circle", "a small blue square", "a cross"])
    assert texts.shape == (3, 16)
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), built.model.encode_image(images))
        assert torch.equal(loaded.encode_text(texts), built.model.encode_text(texts))
    assert preprocess.transforms[0].size == 32
