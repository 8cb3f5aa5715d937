"""Shard reading, online balancing per epoch, crop geometry and decode/tokenize output (no Ray)."""

import json

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from curation.hashing import uid_to_u64
from pipeline.core.errors import ClipforgeError
from tests.fixtures.training import write_synthetic_build
from training.balance import online_keep
from training.data import (
    decode_augment_tokenize,
    random_resized_crop_box,
    read_manifest,
    read_shards,
    shard_batches,
    shard_rows,
)

FS = pafs.LocalFileSystem()


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return write_synthetic_build(tmp_path_factory.mktemp("build"), n=40, shard_size=16, px=40, seed=1)


def test_manifest_lists_shards_with_sidecars(build):
    shards = read_manifest(FS, str(build))
    assert [s.n for s in shards] == [16, 16, 8]
    assert shards[0].tar == f"{build}/shards/shard-000000.tar"
    assert shards[0].sidecar == f"{build}/shards/shard-000000.parquet"
    assert read_manifest(FS, f"{build}/manifest.json") == shards


def test_manifest_errors_name_the_problem(tmp_path, build):
    with pytest.raises(ClipforgeError, match="no build manifest"):
        read_manifest(FS, str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "running", "shards": []}))
    with pytest.raises(ClipforgeError, match="not complete \\(status='running'\\)"):
        read_manifest(FS, str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "complete", "shards": []}))
    with pytest.raises(ClipforgeError, match="lists no shards"):
        read_manifest(FS, str(tmp_path))


def test_shard_rows_join_tar_and_sidecar(build):
    ref = read_manifest(FS, str(build))[0]
    rows = shard_rows(FS, {"tar": ref.tar, "sidecar": ref.sidecar})
    side = pq.read_table(ref.sidecar).to_pydict()
    assert rows["uid"] == side["uid"] and rows["caption"] == side["caption"]
    assert rows["keep_prob"] == side["keep_prob"]
    assert all(img[:2] == b"\xff\xd8" for img in rows["image"])  # JPEG bytes, undecoded
    # Without the sidecar, uid comes from each sample's .json and keep_prob is unknown (NaN: keep).
    bare = shard_rows(FS, {"tar": ref.tar, "sidecar": None})
    assert bare["uid"] == side["uid"] and all(np.isnan(bare["keep_prob"]))


def _read(build, **kw):
    refs = read_manifest(FS, str(build))
    batch = {"tar": np.array([r.tar for r in refs]), "sidecar": np.array([r.sidecar for r in refs])}
    return read_shards(batch, fs=FS, seed=0, epoch=0, **kw)


def test_read_shards_balances_with_the_pure_draw(build):
    table = _read(build, balance=True, shuffle=False)
    side = pq.read_table(sorted(map(str, (build / "shards").glob("*.parquet")))).to_pydict()
    keep = online_keep(uid_to_u64(side["uid"]), np.array(side["keep_prob"]), 0, 0)
    expected = uid_to_u64(np.array(side["uid"])[keep]).view(np.int64)
    assert table.column("uid64").to_pylist() == expected.tolist()
    assert 0 < len(expected) < 40  # red samples (p=0.5) were thinned, the rest kept


def test_read_shards_shuffle_is_a_permutation(build):
    plain = _read(build, balance=False, shuffle=False).column("uid64").to_pylist()
    shuffled = _read(build, balance=False, shuffle=True).column("uid64").to_pylist()
    assert sorted(plain) == sorted(shuffled) and plain != shuffled and len(plain) == 40


def test_crop_box_stays_inside_and_covers_the_scale():
    rng = np.random.default_rng(0)
    for w, h in [(40, 40), (36, 30), (64, 32), (17, 90)]:
        for _ in range(200):
            left, top, right, bottom = random_resized_crop_box(w, h, (0.9, 1.0), rng)
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
            cw, ch = right - left, bottom - top
            if 3 / 4 <= w / h <= 4 / 3:  # the requested area is reachable within the aspect range
                assert 0.85 < cw * ch / (w * h) <= 1.0
            assert 3 / 4 - 0.05 <= cw / ch <= 4 / 3 + 0.05
    # Too elongated for any try: torchvision's fallback, a centre crop clamped to the aspect range.
    assert random_resized_crop_box(400, 10, (0.9, 1.0), rng) == (193, 0, 206, 10)


def test_decode_augment_tokenize_output(build):
    table = _read(build, balance=False, shuffle=False).slice(0, 5)
    out = decode_augment_tokenize(table, model_name="clipforge-debug", image_size=32, crop_scale=(0.9, 1.0))
    assert out["image"].shape == (5, 32, 32, 3) and out["image"].dtype == np.uint8
    assert out["text"].shape == (5, 16) and out["text"].dtype == np.int32
    assert (out["text"][:, 0] == 49406).all()  # start-of-text token
    assert out["uid64"].tolist() == table.column("uid64").to_pylist()
    assert out["image"].std() > 10  # a shape on a background, not a blank
    # Crops are a pure function of (seed, epoch, sample): the same again, another epoch crops differently.
    again = decode_augment_tokenize(table, model_name="clipforge-debug", image_size=32, crop_scale=(0.9, 1.0))
    assert np.array_equal(again["image"], out["image"])
    other = decode_augment_tokenize(table, model_name="clipforge-debug", image_size=32, crop_scale=(0.5, 1.0), epoch=1)
    assert not np.array_equal(other["image"], out["image"])


def test_shard_batches_yields_decoded_blocks_per_shard(build):
    refs = read_manifest(FS, str(build))[:2]
    batch = {"tar": np.array([r.tar for r in refs]), "sidecar": np.array([r.sidecar for r in refs])}
    kwargs = {"model_name": "clipforge-debug", "image_size": 32, "crop_scale": (0.9, 1.0), "rows_per_block": 12}
    blocks = list(shard_batches(batch, fs=FS, seed=0, balance=False, shuffle=False, board=None, **kwargs))
    assert [len(b["text"]) for b in blocks] == [12, 12, 8]  # 32 rows from two shards of 16
    assert blocks[0]["image"].shape == (12, 32, 32, 3)
    uids = [u for b in blocks for u in b["uid64"].tolist()]
    assert uids == _read(build, balance=False, shuffle=False).column("uid64").to_pylist()[:32]
