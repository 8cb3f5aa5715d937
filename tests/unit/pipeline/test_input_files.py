"""Inputs as people store them (#18 item 8): a glob, a DataComp directory (0000.parquet beside 0000.npz and a README)
whose other files are skipped and listed, and clear errors for a glob that matches nothing or a directory of two
formats."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.build import Inputs, ignored_line, preflight
from pipeline.build_config import BuildConfig, InputConfig
from pipeline.core.errors import ClipforgeError
from pipeline.ingest import input_files


@pytest.fixture
def datacomp(tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"url": [f"http://x/{i}.jpg"], "caption": ["a cat"]}), d / f"{i:04d}.parquet")
        (d / f"{i:04d}.npz").write_bytes(b"embeddings")
    (d / "README.md").write_text("DataComp small pool")
    return d


def test_a_directory_reads_its_format_and_lists_the_rest(datacomp):
    found = input_files(InputConfig(path=str(datacomp)))
    assert found.format == "parquet"
    assert [p.rsplit("/", 1)[-1] for p in found.files] == ["0000.parquet", "0001.parquet", "0002.parquet"]
    assert sorted(p.rsplit("/", 1)[-1] for p in found.ignored) == ["0000.npz", "0001.npz", "0002.npz", "README.md"]


def test_a_glob_reads_what_it_matches(datacomp):
    found = input_files(InputConfig(path=f"{datacomp}/000[01].parquet"))
    assert [p.rsplit("/", 1)[-1] for p in found.files] == ["0000.parquet", "0001.parquet"] and not found.ignored
    assert len(input_files(InputConfig(path=f"{datacomp}/*.parquet")).files) == 3
    with pytest.raises(ClipforgeError, match=r"input.path '.*/\*.tsv' matches no file"):
        input_files(InputConfig(path=f"{datacomp}/*.tsv"))
    with pytest.raises(ClipforgeError, match="matches no file"):
        input_files(InputConfig(path=f"{datacomp}/nowhere/*.parquet"))


def test_two_formats_in_a_directory_need_input_format_or_a_glob(datacomp):
    (datacomp / "extra.csv").write_text("url,caption\nhttp://x/9.jpg,a dog\n")
    with pytest.raises(ClipforgeError, match=r"several formats \(1 csv, 3 parquet\); set input.format"):
        input_files(InputConfig(path=str(datacomp)))
    chosen = input_files(InputConfig(path=str(datacomp), format="csv"))
    assert [p.rsplit("/", 1)[-1] for p in chosen.files] == ["extra.csv"] and len(chosen.ignored) == 7


def test_preflight_reports_the_skipped_files(datacomp, tmp_path):
    cfg = BuildConfig(input={"path": str(datacomp)}, output=str(tmp_path / "out"), stages=["text"])
    inputs = preflight(cfg)
    assert inputs.rows == 3 and len(inputs.ignored) == 4
    assert ignored_line(inputs) == (
        "4 file(s) in the input that are not parquet, not read: 0000.npz, 0001.npz, 0002.npz, README.md"
    )
    many = Inputs({}, "parquet", None, [], [f"/d/{i}.npz" for i in range(7)])
    assert ignored_line(many).endswith("0.npz, 1.npz, 2.npz, 3.npz, 4.npz (+2 more)")
