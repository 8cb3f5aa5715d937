"""GPU paths of the embed stage (#22): actors ask for `embed.num_gpus` (fractional) when the cluster has GPUs, embed
under bf16 autocast on CUDA, and agree with the CPU fp32 embeddings. Skipped without CUDA; on a GPU machine:
`python -m pytest -m gpu tests/integration/pipeline/test_embed_gpu.py`."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.rundir import RunDir
from pipeline.stages.embed import EmbedPartsConfig, EmbedPartStage, embed_parts, embed_resources, read_embeddings
from pipeline.stages.model_configs import EmbedConfig
from tests.fixtures.model_curation import jpeg, part_table

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def run(tmp_path):
    d = tmp_path / "run" / "work" / "download"
    d.mkdir(parents=True)
    colours = [(i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(24)]
    for p in range(2):
        uids = [f"u{p}{i:02d}" for i in range(12)]
        pq.write_table(part_table(uids, [jpeg(c) for c in colours[p * 12 : p * 12 + 12]], [None] * 12),
                       d / f"part-{p:06d}.parquet")  # fmt: skip
    return RunDir(str(tmp_path / "run"))


def test_actors_ask_for_fractional_gpus_and_embed_on_cuda(ray_local, run, tiny_model):
    cfg = EmbedConfig(model=f"local-dir:{tiny_model}", num_gpus=0.5, batch_size=8)
    res = embed_resources(cfg)
    assert res.num_gpus == 0.5 and res.max_actors >= 2
    info = embed_parts(cfg, run, [], 64, lambda line: None)
    assert info["rows"] == 24 and info["embedded_now"] == 2


def test_bf16_cuda_embeddings_agree_with_cpu_fp32(run, tiny_model):
    def embed(device: str):
        cfg = EmbedConfig(model=f"local-dir:{tiny_model}", device=device, batch_size=8)
        out = run.path(f"emb-{device}")
        stage = EmbedPartStage(
            EmbedPartsConfig(embed=cfg, download_dir=run.path("work", "download"), out_dir=out, dim=64)
        )
        stage.commit(0)
        return stage, pq.read_table(f"{out}/part-000000.parquet")

    gpu_stage, gpu = embed("auto")
    assert next(gpu_stage.loaded.model.parameters()).is_cuda
    _, cpu = embed("cpu")
    a = np.stack(gpu["image_emb"].to_numpy(zero_copy_only=False)).astype(np.float32)
    b = np.stack(cpu["image_emb"].to_numpy(zero_copy_only=False)).astype(np.float32)
    assert (np.einsum("ij,ij->i", a, b) > 0.99).all()  # bf16 autocast: close to fp32, not bit-equal
    assert read_embeddings(run, ["uid"]).num_rows == 0  # nothing was committed under embeddings/parts
