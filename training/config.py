"""`TrainConfig`: everything `clipforge train` reads, one strict sub-config per component.

Plain pydantic models only (no Ray, no torch): the driver validates the YAML, the workers receive
`model_dump(mode="json")` and re-validate — only plain dicts cross the Ray boundary.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.core.config import StrictModel
from pipeline.core.storage.s3 import S3Options


class ModelConfig(StrictModel):
    name: str = "clipforge-tiny"
    """open_clip model name: a built-in (ViT-B-32, ViT-B-16, ...) or a JSON config in configs/models/. Random
    init; nothing is downloaded."""
    precision: Literal["auto", "fp32", "amp_bf16"] = "auto"
    """`auto`: bf16 autocast on CUDA, fp32 on CPU. `amp_bf16` on CPU is allowed but slow."""
    grad_checkpointing: bool = False
    """Recompute activations in the backward pass (both towers): less memory, ~30 % more compute."""
    torch_compile: bool = False
    """Wrap the (DDP) model in `torch.compile`; checkpoints still hold the uncompiled weights."""
    patch_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """FLIP patch dropout for ViT models: the fraction of image patch tokens dropped at random in every training
    forward (open_clip's vision_cfg.patch_dropout; never in eval or export). 0.5 roughly halves the image tower's
    cost per sample; a ResNet model with a non-zero value is an error."""


class DataConfig(StrictModel):
    manifest: str = "runs/demo"
    """A build's run directory or its manifest.json, local path or s3://bucket/prefix."""
    batch_size: int = Field(256, ge=1)
    """Global batch size; must divide by the number of workers (every worker gets batch_size / workers)."""
    crop_scale: tuple[float, float] = (0.9, 1.0)
    """RandomResizedCrop area range (open_clip's default)."""
    online_balance: bool = False
    """Re-draw MetaCLIP keep decisions every epoch from the sidecar's keep_prob: keep iff u(seed, epoch, uid) <
    keep_prob. Use with shards that hold the pre-balance pool."""
    shuffle: bool = True
    """Shuffle shard order per epoch and sample order inside each shard (hash of seed, epoch, uid)."""
    decode_cpus: float = Field(1.0, gt=0)
    """CPUs each decode/augment/tokenize task reserves (fractional on small machines so training workers keep
    theirs)."""
    prefetch_batches: int = Field(2, ge=0)
    """Batches each worker's iterator prefetches in a background thread."""
    exact_order: bool = False
    """Deterministic order per rank, for exact resume: each rank builds each epoch's dataset itself from its share
    of the epoch's seeded shard order (rank r: positions r, r + workers, ...), read with Ray Data's preserve_order,
    instead of one pipeline split by streaming_split (which hands blocks to whichever rank asks first). A resumed
    run then trains on exactly the samples, in the same order on each rank, that an uninterrupted run would. Costs:
    one pipeline per rank, blocks wait for their predecessors, and ranks with fewer rows end the epoch for all
    (docs/training.md, Exact resume)."""


class OptimConfig(StrictModel):
    lr: float = Field(5e-4, gt=0)
    """Peak learning rate (after warmup)."""
    weight_decay: float = Field(0.2, ge=0)
    """AdamW decoupled weight decay, applied to >= 2-D weights only (not to biases, norms, logit_scale)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas (CLIP's ViT setting)."""
    eps: float = Field(1e-6, gt=0)
    """AdamW epsilon."""
    warmup_steps: int = Field(100, ge=0)
    """Linear warmup from lr/warmup to lr, then cosine decay to 0 at `steps`."""
    grad_clip_norm: float | None = Field(None, gt=0)
    """Clip the global gradient norm to this value; null disables clipping."""
    accum_freq: int = Field(1, ge=1)
    """Gradient accumulation (open_clip's --accum-freq): one optimizer step per `accum_freq` batches of
    data.batch_size, the contrastive loss computed against all of them (features cached without grad, then each
    batch recomputed with grad), so a step equals one on a batch accum_freq x larger. Costs one extra forward per
    sample and memory for the features and inputs of all accum_freq batches; `steps` counts optimizer steps."""


class LossConfig(StrictModel):
    kind: Literal["clip", "siglip"] = "clip"
    """`clip`: open_clip ClipLoss(local_loss, gather_with_grad). `siglip`: open_clip SigLipLoss (the model gets
    init_logit_scale log 10 and init_logit_bias -10)."""


class WorkersConfig(StrictModel):
    num_workers: int = Field(2, ge=1)
    """Ray Train workers (one process each; one GPU each when use_gpu)."""
    use_gpu: bool = False
    """Train on CUDA (NCCL); otherwise CPU (gloo)."""
    cpus_per_worker: float = Field(1.0, gt=0)
    """CPUs each worker reserves; leave some for the Ray Data decode pool."""
    accelerator_type: str | None = None
    """Ray accelerator type to schedule on (e.g. H100), or null for any."""
    peak_tflops: float | None = Field(None, gt=0)
    """Dense bf16 peak of one accelerator for MFU; null looks the device name up (H100/H200/A100/L4/...)."""


class CheckpointConfig(StrictModel):
    every_steps: int = Field(500, ge=1)
    """Checkpoint every N steps (and always at the end)."""
    num_to_keep: int | None = Field(2, ge=1)
    """Keep the latest N checkpoints under storage_path/name; null keeps all."""


class FailureConfig(StrictModel):
    max_failures: int = Field(1, ge=-1)
    """Worker-group restarts from the latest checkpoint before the run fails; -1 retries forever."""


class LogConfig(StrictModel):
    every_steps: int = Field(10, ge=1)
    """Metrics (CSV, TensorBoard, terminal) every N steps; values are averages over the window."""
    tensorboard: bool = True
    """Write TensorBoard event files under RUN/tb."""
    progress: bool = True
    """Print a progress line in the driver's terminal."""
    sample_keys: bool = False
    """Audit trail: every rank writes the uid64 of each sample it trains on, per step, to
    RUN/samples/rank-R.from-S.tsv (S: the step the attempt started from), at every checkpoint and at the end."""


class ExportConfig(StrictModel):
    enabled: bool = True
    """Write an open_clip local-dir (open_clip_config.json + open_clip_model.safetensors) at the end."""
    path: str | None = None
    """Where to export; null means RUN/export (RUN = storage_path/name)."""


class TrainEvalConfig(StrictModel):
    every_steps: int | None = Field(None, ge=1)
    """Evaluate the live model every N optimizer steps and at the last step (rank 0, the code path of `clipforge
    eval`; the other ranks wait at their next collective); null turns evaluation during training off."""
    benchmarks: list[str] = Field(default_factory=lambda: ["digits"], min_length=1)
    """Any benchmark `clipforge eval` accepts (`digits`, `synthetic:PATH`, `imagefolder:PATH`, `wds:PATH`,
    `captions:PATH`), readable where rank 0 runs: zero-shot classification, or retrieval for caption sets."""
    max_images: int | None = Field(None, ge=1)
    """Evaluate on at most this many test images per benchmark (evenly spaced, as `clipforge eval`'s
    max_samples); null: all."""
    batch_size: int = Field(256, ge=1)
    """Images (or prompts) per forward pass."""

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, specs: list[str]) -> list[str]:
        from evaluation.config import check_benchmark_specs

        return check_benchmark_specs(specs)


class TrainConfig(StrictModel):
    name: str = Field("clipforge-train", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Run name: the run directory is storage_path/name; re-running with the same name resumes."""
    storage_path: str = "runs/train"
    """Where runs live: a local directory or s3://bucket/prefix (checkpoints, metrics, export)."""
    steps: int = Field(1000, ge=1)
    """Total optimizer steps; epochs repeat over the data until reached."""
    seed: int = 0
    """Seed for init, augmentation order and the per-epoch (seed, epoch, uid) draws."""
    model: ModelConfig = ModelConfig()
    """Which open_clip model and how to run it."""
    data: DataConfig = DataConfig()
    """Where the shards are and how they become batches."""
    optim: OptimConfig = OptimConfig()
    """AdamW and the learning-rate schedule."""
    loss: LossConfig = LossConfig()
    """Contrastive loss (CLIP softmax or SigLIP sigmoid)."""
    workers: WorkersConfig = WorkersConfig()
    """Ray Train scaling: workers, devices, CPUs."""
    checkpoint: CheckpointConfig = CheckpointConfig()
    """Checkpoint frequency and retention."""
    failure: FailureConfig = FailureConfig()
    """Automatic restarts after worker failures."""
    log: LogConfig = LogConfig()
    """Metrics logging and terminal progress."""
    export: ExportConfig = ExportConfig()
    """open_clip local-dir export at the end of the run."""
    eval: TrainEvalConfig = TrainEvalConfig()
    """Zero-shot / retrieval evaluation during the run (`eval/<benchmark>/<metric>` in metrics and checkpoints)."""
    s3: S3Options = S3Options()
    """How to reach S3 for s3:// data, storage and export locations (credentials come from the AWS chain)."""

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainConfig:
        if self.data.batch_size % self.workers.num_workers:
            raise ValueError(
                f"data.batch_size={self.data.batch_size} must be divisible by workers.num_workers="
                f"{self.workers.num_workers} (every worker needs the same local batch for the all-gather)"
            )
        return self

    @property
    def local_batch_size(self) -> int:
        return self.data.batch_size // self.workers.num_workers


LOGIT_SCALE_MAX = math.log(100.0)  # CLIP paper: "clipped to prevent scaling the logits by more than 100"


def config_warnings(cfg: TrainConfig) -> list[str]:
    """Settings that are valid but almost certainly not what was meant; the CLI prints each once (workers
    re-validate the config, so a warning raised during validation would repeat per process)."""
    out = []
    if cfg.optim.warmup_steps >= cfg.steps:
        out.append(
            f"optim.warmup_steps={cfg.optim.warmup_steps} >= steps={cfg.steps}: the learning rate ramps up for the "
            f"whole run and never reaches optim.lr={cfg.optim.lr:g} (no cosine decay); lower optim.warmup_steps"
        )
    return out
