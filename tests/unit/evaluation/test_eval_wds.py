"""CLIP_benchmark's webdataset layout: export and read back; what a malformed folder says."""

import numpy as np
import pytest

from evaluation.datasets import Benchmark, ImageList, Split, load_benchmark, load_digits_benchmark
from evaluation.errors import EvaluationError
from evaluation.wds import export_wds
from pipeline.core.tar import iter_samples, write_tar


@pytest.fixture
def small_digits():
    d = load_digits_benchmark()
    idx = np.arange(0, 726, 30)
    return Benchmark("digits", "classification", d.test.take(idx), d.train.take(idx[:10]), d.classnames, d.templates)


def test_classification_round_trip(tmp_path, small_digits):
    root = export_wds(small_digits, tmp_path / "wds_digits", shard_size=10)
    assert (root / "test" / "nshards.txt").read_text().strip() == "3"
    assert (root / "classnames.txt").read_text().splitlines() == [str(i) for i in range(10)]
    assert (root / "zeroshot_classification_templates.txt").read_text() == 'a photo of the number: "{c}".\n'
    b = load_benchmark(f"wds:{root}")
    assert b.name == "wds:wds_digits" and b.classnames == small_digits.classnames
    assert b.templates == small_digits.templates and not b.notes
    assert b.test.labels.tolist() == small_digits.test.labels.tolist()
    assert b.train.labels.tolist() == small_digits.train.labels.tolist()
    for i in (0, 7, len(b.test) - 1):  # PNG is lossless
        assert np.array_equal(np.asarray(b.test.images[i]), np.asarray(small_digits.test.images[i]))


def test_export_is_byte_deterministic(tmp_path, small_digits):
    a = export_wds(small_digits, tmp_path / "a", shard_size=100)
    b = export_wds(small_digits, tmp_path / "b", shard_size=100)
    assert (a / "test" / "0.tar").read_bytes() == (b / "test" / "0.tar").read_bytes()


def test_retrieval_round_trip(tmp_path, small_digits):
    caps = [["one", "two"], ["three"]]
    bench = Benchmark("c", "retrieval", Split(small_digits.test.images.take(np.arange(2)), captions=caps))
    root = export_wds(bench, tmp_path / "ret")
    assert (root / "dataset_type.txt").read_text().strip() == "retrieval"
    b = load_benchmark(f"wds:{root}")
    assert b.kind == "retrieval" and b.test.captions == caps


def test_grouping_follows_webdataset_keys(tmp_path):
    path = tmp_path / "x.tar"
    with path.open("wb") as f:
        write_tar(f, [("a/k1.png", b"1"), ("a/k1.cls", b"3"), ("a/k2.x.png", b"2"), ("a/k2.x.cls", b"4")])
    with path.open("rb") as f:
        samples = list(iter_samples(f))
    assert [s["__key__"] for s in samples] == ["a/k1", "a/k2"]
    assert samples[1]["x.cls"] == b"4"  # webdataset: key up to the first dot, the rest is the extension


def test_missing_classnames_is_a_clear_error(tmp_path, small_digits):
    root = export_wds(small_digits, tmp_path / "w")
    (root / "classnames.txt").unlink()
    with pytest.raises(EvaluationError, match="no classnames.txt"):
        load_benchmark(f"wds:{root}")


def test_missing_templates_fall_back_to_imagenet_with_a_note(tmp_path, small_digits):
    root = export_wds(small_digits, tmp_path / "w")
    (root / "zeroshot_classification_templates.txt").unlink()
    b = load_benchmark(f"wds:{root}")
    assert len(b.templates) == 80 and "80 ImageNet templates" in b.notes[0]


def test_missing_nshards_shard_or_label(tmp_path, small_digits):
    with pytest.raises(EvaluationError, match="not a directory"):
        load_benchmark(f"wds:{tmp_path / 'nope'}")
    root = export_wds(small_digits, tmp_path / "w", shard_size=10)
    (root / "test" / "2.tar").unlink()
    with pytest.raises(EvaluationError, match="2.tar"):
        load_benchmark(f"wds:{root}")
    (root / "test" / "nshards.txt").unlink()
    with pytest.raises(EvaluationError, match="nshards.txt"):
        load_benchmark(f"wds:{root}")
    (root / "classnames.txt").write_text("0\n1\n")
    bad = Benchmark(
        "x", "classification", Split(ImageList([np.zeros((2, 2), np.uint8)]), np.array([5])), None, ["0"], ("{c}",)
    )
    export_wds(bad, tmp_path / "bad")
    with pytest.raises(EvaluationError, match="labels outside"):
        load_benchmark(f"wds:{tmp_path / 'bad'}")
