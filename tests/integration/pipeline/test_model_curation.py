"""embed → clip_filter → semdedup on a real local Ray with a tiny random open_clip model (CPU): download parts in,
float16 embeddings per part out (resumable), reject lists from the two barriers applied by their stages."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import ClipforgeError
from pipeline.dedup.reject import DedupRejectConfig, DedupRejectStage
from pipeline.rundir import RunDir
from pipeline.stages.base import StageSpec
from pipeline.stages.clip_filter import ClipFilterStage, ListedRejectConfig, clip_filter_barrier
from pipeline.stages.embed import PARTS_DIR, check_model, check_stored_width, embed_parts, read_embeddings
from pipeline.stages.model_configs import ClipFilterConfig, EmbedConfig, SemDedupConfig
from pipeline.stages.semdedup import SemDedupStage, semdedup_barrier
from tests.fixtures.model_curation import jpeg, part_table


@pytest.fixture
def run(tmp_path):
    """A run with two download parts: part 0 has a failed download (no image) and a pair of identical images."""
    d = tmp_path / "run" / "work" / "download"
    d.mkdir(parents=True)
    red, blue, green = jpeg((220, 20, 20)), jpeg((20, 20, 220)), jpeg((20, 200, 20))
    pq.write_table(part_table(["a0", "a1", "a2", "a3"], [red, None, red, blue], [None, "http_404", None, None]),
                   d / "part-000000.parquet")  # fmt: skip
    pq.write_table(part_table(["b0", "b1"], [green, blue], [None, None]), d / "part-000001.parquet")
    return RunDir(str(tmp_path / "run"))


def test_embed_parts_stores_float16_per_part_and_resumes(ray_local, run, tiny_model, tmp_path):
    cfg = EmbedConfig(model=f"local-dir:{tiny_model}", batch_size=2)
    dim = check_model(cfg)
    assert dim == 64
    # a dedup decision is applied before embedding: b1 is listed as a duplicate, so it is not embedded
    exact = tmp_path / "exact.parquet"
    pq.write_table(pa.table({"uid": ["b1"], "representative": ["a3"]}), exact)
    before = [StageSpec(DedupRejectStage, DedupRejectConfig(exact=str(exact)))]
    lines = []
    info = embed_parts(cfg, run, before, dim, lines.append)
    assert info == {"parts": 2, "embedded_before": 0, "embedded_now": 2, "rows": 4}
    emb = read_embeddings(run, ["uid", "image_emb", "text_emb"])
    assert emb["uid"].to_pylist() == ["a0", "a2", "a3", "b0"]  # no failed download, no dedup reject
    assert emb.schema.field("image_emb").type == pa.list_(pa.float16(), 64)
    img = np.stack(emb["image_emb"].to_numpy(zero_copy_only=False)).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(img[0], img[1], atol=1e-3)  # identical images, identical embeddings
    assert json.loads((tmp_path / "run" / "embeddings" / "model.json").read_text())["dim"] == 64

    parts = tmp_path / "run" / PARTS_DIR
    kept_mtime = (parts / "part-000000.parquet").stat().st_mtime_ns
    (parts / "part-000001.parquet").unlink()
    info = embed_parts(cfg, run, before, dim, lines.append)
    assert info == {"parts": 2, "embedded_before": 1, "embedded_now": 1, "rows": 4}
    assert (parts / "part-000000.parquet").stat().st_mtime_ns == kept_mtime  # not redone

    with pytest.raises(ClipforgeError, match="width 32.*width 64"):
        check_stored_width(run, cfg, 32)


def test_barriers_list_low_scores_and_semantic_duplicates(ray_local, run, tiny_model):
    import ray

    from curation.semdedup import semantic_duplicate_pairs
    from pipeline.stages.clip_filter import clip_scores, vectors

    cfg = EmbedConfig(model=f"local-dir:{tiny_model}")
    embed_parts(cfg, run, [], check_model(cfg), lambda s: None)
    emb = read_embeddings(run, ["uid", "image_emb", "text_emb"])
    uids = emb["uid"].to_pylist()
    assert uids == ["a0", "a2", "a3", "b0", "b1"]
    scores = clip_scores(vectors(emb["image_emb"]), vectors(emb["text_emb"]))

    clip_list = clip_filter_barrier(run, ClipFilterConfig(keep_fraction=0.8))  # 4 of 5 kept: the lowest goes
    summary = run.read_json("dedup/clip_filter.json")
    assert summary["scored"] == 5 and summary["rejected"] == 1 and sum(summary["hist"]) == 5
    listed = pq.read_table(clip_list).to_pylist()
    low = uids[int(np.argmin(scores))]
    assert [r["uid"] for r in listed] == [low]
    assert listed[0]["detail"].startswith(f"score={scores.min():.4f} threshold=")

    sem_list = semdedup_barrier(run, SemDedupConfig(eps=0.01, n_clusters=2), after=clip_list)
    sem = {r["uid"]: r["detail"] for r in pq.read_table(sem_list).to_pylist()}
    rest = [i for i, u in enumerate(uids) if u != low]
    res = semantic_duplicate_pairs(vectors(emb["image_emb"])[rest], eps=0.01, n_clusters=2, seed=0)
    assert sorted(sem) == sorted(uids[rest[i]] for i in np.flatnonzero(res.dropped))
    for dup, first in (("a2", "a0"), ("b1", "a3")):  # identical images: the larger uid names the smaller
        if low not in (dup, first):
            assert sem[dup].startswith(f"{first} cos=1.00")

    rows = pa.table({"uid": [*uids, "zz"], "reject_reason": pa.nulls(6, pa.string())})
    ds = ray.data.from_arrow(rows)
    for stage, uri, reason in (
        (ClipFilterStage, clip_list, "low_clip_score"),
        (SemDedupStage, sem_list, "semantic_duplicate"),
    ):
        kw = {"config": ListedRejectConfig(path=uri, reason=reason)}
        ds = ds.map_batches(stage, fn_constructor_kwargs=kw, batch_format="pyarrow", num_cpus=0.25,
                            compute=ray.data.ActorPoolStrategy(size=1))  # fmt: skip
    out = {r["uid"]: (r["reject_stage"], r["reject_reason"]) for r in ds.take_all()}
    assert out[low] == ("clip_filter", "low_clip_score")
    assert out["zz"] == (None, None)
    assert all(out[u] == ("semdedup", "semantic_duplicate") for u in sem)
    assert sum(v == (None, None) for v in out.values()) == 6 - 1 - len(sem)


def test_a_missing_model_or_a_config_name_without_weights_is_a_user_error(tmp_path):
    with pytest.raises(ClipforgeError, match="does not exist"):
        check_model(EmbedConfig(model=f"local-dir:{tmp_path / 'nope'}"))
    with pytest.raises(ClipforgeError, match="without embed.checkpoint"):
        check_model(EmbedConfig(model="clipforge-tiny"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipforgeError, match="could not load"):
        check_model(EmbedConfig(model="clipforge-tiny", checkpoint=str(bad)))
