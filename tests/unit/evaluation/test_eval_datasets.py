"""Benchmark loaders: digits, synthetic parquet, imagefolder, caption parquet; specs and their errors."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from evaluation.datasets import (
    ImageList,
    fixed_split,
    load_benchmark,
    load_digits_benchmark,
    parse_benchmark_spec,
)
from evaluation.errors import EvaluationError
from pipeline.core.errors import ClipforgeError


def png(colour, size=(6, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_fixed_split_is_stratified_and_deterministic():
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0])
    mask = fixed_split(labels)
    # class 0 at positions 0,2,3,5,6,10 -> ranks 0..5 -> r % 5 < 2: ranks 0,1,5; class 1 at 1,4,7,8,9 -> ranks 0,1
    assert np.flatnonzero(mask).tolist() == [0, 1, 2, 4, 10]


def test_digits_real_sklearn_images_and_fixed_split():
    d = load_digits_benchmark()
    assert len(d.test) + len(d.train) == 1797
    assert len(d.test) == 726 and d.classnames == [str(i) for i in range(10)]
    assert d.templates == ('a photo of the number: "{c}".',)
    assert np.bincount(d.test.labels).min() >= 70  # every class present in the test split
    img = d.test.images[0]
    assert img.mode == "RGB" and img.size == (8, 8)
    from sklearn.datasets import load_digits

    expected = np.round(load_digits().images[0] * 255 / 16)  # sample 0 is class 0's first: in the test split
    np.testing.assert_array_equal(np.asarray(img)[:, :, 0], expected)
    assert load_digits_benchmark().test.labels.tolist() == d.test.labels.tolist()


def test_limit_keeps_evenly_spaced_samples():
    d = load_digits_benchmark().limit(100)
    assert len(d.test) == 100 and len(set(d.test.labels.tolist())) == 10


def _synthetic(tmp_path, classnames_file=True, names=("red circle", "blue square", "handwritten digit 3")):
    rows = [(5, 2), (1, 0), (3, 1), (2, 0), (4, 2)]  # (image_id, label), unsorted
    table = pa.table(
        {
            "image": [png((i * 40, 0, 0)) for i, _ in rows],
            "label": [lab for _, lab in rows],
            "class_name": [names[lab] for _, lab in rows],
            "image_id": [i for i, _ in rows],
        }
    )
    eval_dir = tmp_path / "web" / "eval"
    eval_dir.mkdir(parents=True)
    pq.write_table(table, eval_dir / "synthetic.parquet")
    if classnames_file:
        (eval_dir / "classnames.txt").write_text("".join(f"{n}\n" for n in names))
    return eval_dir


@pytest.mark.parametrize("which", ["dir", "parquet", "webdir"])
def test_synthetic_from_dir_parquet_or_web_dir(tmp_path, which):
    eval_dir = _synthetic(tmp_path)
    path = {"dir": eval_dir, "parquet": eval_dir / "synthetic.parquet", "webdir": eval_dir.parent}[which]
    b = load_benchmark(f"synthetic:{path}")
    assert b.kind == "classification" and b.classnames == ["red circle", "blue square", "handwritten digit 3"]
    assert b.test.labels.tolist() == [0, 0, 1, 2, 2]  # ordered by image_id 1..5
    assert b.test.images[0].getpixel((0, 0)) == (40, 0, 0)
    assert "a photo of a {c}" in b.templates and b.train is None


def test_synthetic_class_names_from_columns_and_mismatch(tmp_path):
    eval_dir = _synthetic(tmp_path, classnames_file=False)
    assert load_benchmark(f"synthetic:{eval_dir}").classnames[2] == "handwritten digit 3"
    (eval_dir / "classnames.txt").write_text("red circle\nGREEN square\nhandwritten digit 3\n")
    with pytest.raises(EvaluationError, match="disagree"):
        load_benchmark(f"synthetic:{eval_dir}")


def test_synthetic_missing_parquet_or_column(tmp_path):
    with pytest.raises(EvaluationError, match="no parquet"):
        load_benchmark(f"synthetic:{tmp_path}")
    pq.write_table(pa.table({"image": [b"x"], "label": [0]}), tmp_path / "synthetic.parquet")
    with pytest.raises(EvaluationError, match="class_name"):
        load_benchmark(f"synthetic:{tmp_path}")


def test_imagefolder_with_and_without_splits(tmp_path):
    for split in ("train", "test"):
        for cls, colour in (("golden_retriever", "yellow"), ("cat", "grey")):
            d = tmp_path / "split" / split / cls
            d.mkdir(parents=True)
            (d / "a.png").write_bytes(png(colour))
            (d / "b.jpg").write_bytes(png(colour))
            (d / "notes.txt").write_text("not an image")
    b = load_benchmark(f"imagefolder:{tmp_path / 'split'}")
    assert b.classnames == ["cat", "golden retriever"] and len(b.test) == 4 and len(b.train) == 4
    assert b.test.labels.tolist() == [0, 0, 1, 1] and len(b.templates) == 80
    flat = load_benchmark(f"imagefolder:{tmp_path / 'split' / 'test'}")
    assert flat.train is None and len(flat.test) == 4
    with pytest.raises(EvaluationError, match="no class folders"):
        load_benchmark(f"imagefolder:{tmp_path / 'split' / 'test' / 'cat'}")


def test_caption_parquet_single_and_multiple_captions(tmp_path):
    pq.write_table(
        pa.table({"image": [png("red"), png("blue")], "captions": [["a", "b"], ["c"]]}), tmp_path / "a.parquet"
    )
    b = load_benchmark(f"captions:{tmp_path / 'a.parquet'}")
    assert b.kind == "retrieval" and b.test.captions == [["a", "b"], ["c"]]
    pq.write_table(pa.table({"image": [png("red")], "caption": ["one"]}), tmp_path / "single.parquet")
    assert load_benchmark(f"captions:{tmp_path / 'single.parquet'}").test.captions == [["one"]]
    pq.write_table(pa.table({"image": [png("red")], "captions": [[]]}), tmp_path / "empty.parquet")
    with pytest.raises(EvaluationError, match="without a caption"):
        load_benchmark(f"captions:{tmp_path / 'empty.parquet'}")


@pytest.mark.parametrize(
    "spec,message",
    [("cifar10", "unknown benchmark 'cifar10'"), ("wds", "needs a path"), ("digits:/x", "unknown benchmark")],
)
def test_bad_specs_are_clipforge_errors(spec, message):
    with pytest.raises(ClipforgeError, match=message):
        parse_benchmark_spec(spec)


def test_image_list_decodes_bytes_paths_and_arrays(tmp_path):
    (tmp_path / "x.png").write_bytes(png("blue"))
    images = ImageList([png("red"), str(tmp_path / "x.png"), np.full((2, 2), 7, dtype=np.uint8)])
    assert [images[i].getpixel((0, 0)) for i in range(3)] == [(255, 0, 0), (0, 0, 255), (7, 7, 7)]
    assert images.take(np.array([2, 0])).items[1] == images.items[0]
