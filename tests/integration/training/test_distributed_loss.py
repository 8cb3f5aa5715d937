"""With 2 workers (gloo, DDP) the loss and gradients equal one process on the concatenated global batch.

This is what `local_loss=True, gather_with_grad=True` promises (open_clip #894) and what the trainer relies on; run
with torch.distributed directly (two forked processes, no Ray) to keep it fast.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.config import ModelConfig
from training.loss import build_loss, contrastive_loss
from training.model import build_model

WORLD, LOCAL = 2, 4
KINDS = ("clip", "siglip")


def global_batch(micro: int = 1):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(micro * WORLD * LOCAL, 3, 32, 32, generator=g)
    texts = torch.randint(1, 49000, (micro * WORLD * LOCAL, 16), generator=g)
    return images, texts


def gradients(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for kind in KINDS:
            model = build_model(ModelConfig(name="clipforge-debug"), loss_kind=kind, seed=0).model
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            images, texts = global_batch()
            part = slice(rank * LOCAL, (rank + 1) * LOCAL)
            loss = contrastive_loss(build_loss(kind, rank, WORLD), ddp(images[part], texts[part]))
            loss.backward()  # DDP averages gradients over ranks
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            if rank == 0:
                torch.save({"loss": mean_loss / WORLD, "grads": gradients(model)}, os.path.join(out_dir, kind))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    """Both losses computed once by 2 forked gloo ranks (fork: the children reuse this process's imports)."""
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(_worker, args=(str(out / "pg"), str(out)), nprocs=WORLD, join=True, start_method="fork")
    assert ctx is None or ctx.join()
    return {kind: torch.load(out / kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_two_workers_equal_one_process_on_the_global_batch(distributed_results, kind):
    distributed = distributed_results[kind]

    model = build_model(ModelConfig(name="clipforge-debug"), loss_kind=kind, seed=0).model
    images, texts = global_batch()
    loss = contrastive_loss(build_loss(kind, 0, 1), model(images, texts))
    loss.backward()
    single = gradients(model)

    assert distributed["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert distributed["grads"].keys() == single.keys()
    for name, grad in single.items():
        torch.testing.assert_close(distributed["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # Not vacuous: the loss is the global one, not a per-rank one over 4 samples (which would differ).
    local = contrastive_loss(build_loss(kind, 0, 1), model(images[:LOCAL], texts[:LOCAL])).item()
    assert abs(local - loss.item()) > 1e-3


ACCUM = 2


def _accum_worker(rank: int, init_file: str, out_dir: str) -> None:
    """Each rank: ACCUM micro-batches of LOCAL through `accumulate_gradients` under DDP (no_sync but on the last)."""
    from tests.fixtures.training import tiny_train_config
    from training.step import accumulate_gradients, build_worker

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for kind in KINDS:
            keys = {"loss.kind": kind, "optim.accum_freq": ACCUM, "data.batch_size": WORLD * LOCAL}
            cfg = tiny_train_config("unused", "unused", "accum", **keys)
            w = build_worker(cfg, torch.device("cpu"), rank, WORLD, wrap=torch.nn.parallel.DistributedDataParallel)
            images, texts = global_batch(ACCUM)
            parts = [slice((j * WORLD + rank) * LOCAL, (j * WORLD + rank + 1) * LOCAL) for j in range(ACCUM)]
            accumulate_gradients(w, [(images[p], texts[p]) for p in parts])
            if rank == 0:
                torch.save(gradients(w.model), os.path.join(out_dir, f"accum-{kind}"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def accumulated_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp-accum")
    ctx = mp.start_processes(
        _accum_worker, args=(str(out / "pg"), str(out)), nprocs=WORLD, join=True, start_method="fork"
    )
    assert ctx is None or ctx.join()
    return {kind: torch.load(out / f"accum-{kind}") for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_two_workers_accumulating_equal_one_process_on_the_whole_batch(accumulated_results, kind):
    """optim.accum_freq under DDP: 2 ranks x 2 micro-batches of 4 give the gradient of one process on all 16."""
    distributed = accumulated_results[kind]
    model = build_model(ModelConfig(name="clipforge-debug"), loss_kind=kind, seed=0).model
    images, texts = global_batch(ACCUM)
    contrastive_loss(build_loss(kind, 0, 1), model(images, texts)).backward()
    single = gradients(model)
    assert distributed.keys() == single.keys()
    for name, grad in single.items():
        torch.testing.assert_close(distributed[name], grad, rtol=1e-4, atol=1e-6, msg=name)
