"""Training levers: `optim.accum_freq` (open_clip's feature-cached gradient accumulation) and `model.patch_dropout`
(FLIP). Plain torch on CPU, one process: the step code the Ray loop runs, without Ray."""

import pytest
import torch

from pipeline.core.errors import ClipforgeError
from tests.fixtures.training import tiny_train_config
from training.config import ModelConfig
from training.model import build_model
from training.step import Progress, accumulate_gradients, build_worker, normalize_images, train_step

K, MICRO = 3, 4
KINDS = ("clip", "siglip")


def config(kind: str, accum: int, batch: int, **overrides):
    base = {"workers.num_workers": 1, "data.batch_size": batch, "optim.accum_freq": accum, "loss.kind": kind}
    return tiny_train_config("unused", "unused", "levers", **{**base, **overrides})


def batches(n_batches: int, size: int):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_batches * size, 32, 32, 3), dtype=torch.uint8, generator=g)
    texts = torch.randint(1, 49000, (n_batches * size, 16), generator=g)
    return [
        {"image": images[i * size : (i + 1) * size], "text": texts[i * size : (i + 1) * size]}
        for i in range(n_batches)
    ]


def inputs(w, batch):
    return normalize_images(batch["image"], w.mean, w.std), batch["text"].long()


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", KINDS)
def test_accumulated_gradient_equals_the_k_times_larger_batch(kind):
    cpu = torch.device("cpu")
    micro = batches(K, MICRO)
    big = {key: torch.cat([b[key] for b in micro]) for key in ("image", "text")}

    accum = build_worker(config(kind, K, MICRO), cpu)
    loss_accum = accumulate_gradients(accum, [inputs(accum, b) for b in micro])
    single = build_worker(config(kind, 1, K * MICRO), cpu)
    loss_big = accumulate_gradients(single, [inputs(single, big)])

    assert loss_accum.item() == pytest.approx(loss_big.item(), rel=1e-5)
    g_accum, g_big = grads(accum.model), grads(single.model)
    assert g_accum.keys() == g_big.keys() and "logit_scale" in g_big
    for name, g in g_big.items():
        torch.testing.assert_close(g_accum[name], g, rtol=1e-4, atol=1e-6, msg=name)
    # Not vacuous: plain accumulation (each micro-batch's loss on its own negatives) gives another gradient.
    plain = build_worker(config(kind, 1, MICRO), cpu)
    for b in micro:
        accumulate_gradients(plain, [inputs(plain, b)])
    g_plain = grads(plain.model)
    assert not all(torch.allclose(g_plain[n] / K, g, rtol=1e-2, atol=1e-5) for n, g in g_big.items())


def test_accumulated_train_step_takes_the_big_batch_gradient_and_counts_samples():
    cpu = torch.device("cpu")
    micro = batches(K, MICRO)
    big = {key: torch.cat([b[key] for b in micro]) for key in ("image", "text")}
    accum, single = build_worker(config("clip", K, MICRO), cpu), build_worker(config("clip", 1, K * MICRO), cpu)
    p_accum, p_single = Progress(), Progress()
    train_step(accum, micro, p_accum)
    train_step(single, big, p_single)
    assert (p_accum.step, p_accum.batch_in_epoch, p_accum.samples_seen) == (1, K, K * MICRO)
    assert (p_single.step, p_single.batch_in_epoch, p_single.samples_seen) == (1, 1, K * MICRO)
    # The step's gradient (left in .grad by the step) is the big batch's; the weights are not compared: Adam's
    # first step is ~lr * sign(g), which amplifies fp32 noise in gradients that are ~0 (e.g. attention key biases).
    g_big = grads(single.model)
    for name, g in grads(accum.model).items():
        torch.testing.assert_close(g, g_big[name], rtol=1e-4, atol=1e-6, msg=name)


def patch_tokens(model, images) -> int:
    """Tokens entering the vision transformer (after patch dropout) for one forward of `images`."""
    seen = []
    hook = model.visual.patch_dropout.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    try:
        model.encode_image(images)
    finally:
        hook.remove()
    return seen[0]


def test_patch_dropout_drops_tokens_in_train_mode_only():
    images = torch.randn(2, 3, 32, 32)
    model = build_model(ModelConfig(name="clipforge-debug", patch_dropout=0.5)).model
    baseline = build_model(ModelConfig(name="clipforge-debug")).model
    full = patch_tokens(baseline.train(), images)
    assert full == 1 + (32 // 8) ** 2  # class token + 16 patches
    assert patch_tokens(model.train(), images) == 1 + 8  # class token kept, half the patches dropped
    assert patch_tokens(model.eval(), images) == full
    # Same weights as without dropout (the export loads into a model without it).
    assert model.state_dict().keys() == baseline.state_dict().keys()


def test_patch_dropout_on_a_resnet_is_an_error_naming_the_key():
    with pytest.raises(ClipforgeError, match="model.patch_dropout"):
        build_model(ModelConfig(name="clipforge-tiny-rn", patch_dropout=0.5))
