"""Ray Data ingestion: per-epoch online balancing through the board, and equal full batches on every split."""

import threading

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import ray

from curation.hashing import uid_to_u64
from tests.fixtures.training import write_synthetic_build
from training.balance import online_keep
from training.board import board_name, create_board, set_epoch
from training.data import build_dataset, iter_epoch, read_manifest

FS = pafs.LocalFileSystem()


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return write_synthetic_build(tmp_path_factory.mktemp("ingest"), n=200, shard_size=50, seed=2)


def dataset(build, board, balance):
    return build_dataset(
        FS,
        read_manifest(FS, str(build)),
        model_name="clipforge-debug",
        image_size=32,
        crop_scale=(0.9, 1.0),
        seed=7,
        balance=balance,
        shuffle=True,
        board=board,
        decode_cpus=0.5,
        batch_size=16,
    )


def test_each_epoch_redraws_the_kept_set(ray_local, build):
    handle = create_board("ingest-test")
    try:
        ds = dataset(build, board_name("ingest-test"), balance=True)
        side = pq.read_table(sorted(str(p) for p in (build / "shards").glob("*.parquet"))).to_pydict()
        uid64, prob = uid_to_u64(side["uid"]), np.array(side["keep_prob"])
        seen = {}
        for epoch in (0, 1):
            set_epoch(board_name("ingest-test"), epoch)
            rows = [int(u) for b in ds.iter_batches(batch_size=64) for u in b["uid64"]]
            assert len(rows) == len(set(rows))  # each kept sample once per epoch
            seen[epoch] = set(rows)
            expected = {int(u) for u in uid64[online_keep(uid64, prob, 7, epoch)].view(np.int64)}
            assert seen[epoch] == expected
        assert seen[0] != seen[1] and len(seen[0]) < 200
    finally:
        ray.kill(handle)


def test_streaming_split_gives_every_worker_equal_full_batches(ray_local, build):
    splits = dataset(build, None, balance=False).streaming_split(2, equal=True)
    sizes: dict[int, list[int]] = {}

    def consume(i):
        sizes[i] = [len(b["text"]) for b in iter_epoch(splits[i], batch_size=16, prefetch_batches=1)]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(sizes) == {0, 1}
    assert all(n == 16 for s in sizes.values() for n in s)
    # 200 rows split equally = 100 each -> 6 full batches of 16 per worker (4 rows dropped, never a short batch).
    assert len(sizes[0]) == len(sizes[1]) == 6
