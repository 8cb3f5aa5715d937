"""Model factory, weight-decay groups, learning-rate schedule, FLOP counting."""

import math

import open_clip
import pytest
import torch

from pipeline.core.errors import ClipforgeError
from training.config import ModelConfig, OptimConfig
from training.model import build_model, forward_flops_per_sample, param_groups, register_model_configs
from training.optim import build_optimizer, lr_at


def test_registration_is_idempotent_and_ships_a_debug_model():
    first = register_model_configs()
    known = list(open_clip.list_models())
    assert "clipforge-debug" in first and register_model_configs() == first
    assert list(open_clip.list_models()) == known


def test_build_model_is_random_init_deterministic_and_knows_its_preprocessing():
    a, b = (build_model(ModelConfig(name="clipforge-debug"), seed=3) for _ in range(2))
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert (a.image_size, a.context_length) == (32, 16)
    assert tuple(a.preprocess_cfg["mean"]) == open_clip.OPENAI_DATASET_MEAN
    assert a.model.logit_bias is None


def test_siglip_model_gets_bias_and_scale_init():
    built = build_model(ModelConfig(name="clipforge-debug"), loss_kind="siglip")
    assert built.model.logit_bias.item() == pytest.approx(-10.0)
    assert built.model.logit_scale.exp().item() == pytest.approx(10.0)
    assert built.model_cfg["init_logit_bias"] == -10.0  # the export carries it


def test_unknown_model_names_the_key():
    with pytest.raises(ClipforgeError, match="unknown model 'no-such-model' \\(model.name\\)"):
        build_model(ModelConfig(name="no-such-model"))


def test_weight_decay_only_on_matrices():
    model = build_model(ModelConfig(name="clipforge-debug")).model
    decay, no_decay = param_groups(model, 0.2)
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert any(p is model.logit_scale for p in no_decay["params"])
    n_params = sum(1 for _ in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n_params
    opt = build_optimizer(model, OptimConfig())
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-6


def test_warmup_then_cosine_to_zero():
    cfg = OptimConfig(lr=1e-3, warmup_steps=10)
    assert lr_at(0, cfg, 110) == pytest.approx(1e-4)
    assert lr_at(9, cfg, 110) == pytest.approx(1e-3)
    assert lr_at(10, cfg, 110) == pytest.approx(1e-3)
    assert lr_at(60, cfg, 110) == pytest.approx(0.5e-3)
    assert lr_at(110, cfg, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(500, cfg, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(35, cfg, 110) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)) * 1e-3)


def test_flops_scale_with_the_model():
    debug = build_model(ModelConfig(name="clipforge-debug")).model
    tiny = build_model(ModelConfig(name="clipforge-tiny")).model
    f_debug, f_tiny = forward_flops_per_sample(debug, 32, 16), forward_flops_per_sample(tiny, 64, 32)
    # Vision: 16 patch tokens + cls, width 64, 2 layers; the patch embedding alone is 2*16*(3*8*8)*64 FLOPs.
    assert 2 * 16 * 192 * 64 < f_debug < f_tiny
