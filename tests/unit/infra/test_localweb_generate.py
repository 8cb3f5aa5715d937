"""Synthetic web corpus: determinism by seed, candidates/answers consistency, faults, duplicates, eval copies."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from infra.localweb.captions import _WORDS, FOREIGN_LANGUAGES
from infra.localweb.concepts import (
    COLOURS,
    CONCEPTS,
    DIGIT_WORDS,
    EVAL_ID_BASE,
    N_CONCEPTS,
    SHAPES,
    TEXTURES,
    concept_probabilities,
)
from infra.localweb.config import WebConfig
from infra.localweb.faults import EXPECTED_OUTCOME, FAULTS, SERVES_IMAGE, Fault
from infra.localweb.generate import generate
from infra.localweb.plan import ROLES
from infra.localweb.render import VARIANTS

BASE = "http://127.0.0.1:8431"
SMALL = dict(n_candidates=6000, eval_per_concept=2, base_url=BASE)
URL_RE = re.compile(r"^http://127\.0\.0\.1:8431/img/([a-z0-9_]+)/(\d+)/(\d+)/(\d+)\.(jpg|png)$")


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=7, **SMALL), out)
    return out


@pytest.fixture(scope="module")
def answers(web) -> dict[str, list]:
    return pq.read_table(web / "answers.parquet").to_pydict()


def test_same_seed_gives_identical_files(web, tmp_path):
    generate(WebConfig(seed=7, **SMALL), tmp_path)
    for name in ("candidates.parquet", "answers.parquet", "eval/synthetic.parquet", "eval/classnames.txt"):
        assert (tmp_path / name).read_bytes() == (web / name).read_bytes(), name


def test_other_seed_gives_other_corpus(web, tmp_path):
    generate(WebConfig(seed=8, **SMALL), tmp_path)
    a = pq.read_table(web / "answers.parquet")
    b = pq.read_table(tmp_path / "answers.parquet")
    assert a.num_rows == b.num_rows == 6000
    same_caption = np.mean(np.array(a["caption"].to_pylist()) == np.array(b["caption"].to_pylist()))
    assert same_caption < 0.2
    assert a["fault"].to_pylist() != b["fault"].to_pylist()
    assert (tmp_path / "eval/synthetic.parquet").read_bytes() != (web / "eval/synthetic.parquet").read_bytes()


def test_candidates_hold_only_url_and_caption_in_answer_order(web, answers):
    cand = pq.read_table(web / "candidates.parquet")
    assert cand.column_names == ["url", "caption"]
    assert cand["url"].to_pylist() == answers["url"]
    assert cand["caption"].to_pylist() == answers["caption"]
    assert answers["row_id"] == list(range(6000))


def test_answer_fields_are_in_their_domains(answers):
    for i in range(len(answers["row_id"])):
        row = {k: v[i] for k, v in answers.items()}
        c = CONCEPTS[row["concept"]]
        assert row["class_name"] == c.class_name
        assert (row["colour"], row["shape"], row["digit"]) == (c.colour, c.shape, c.digit)
        assert (row["texture"] is None) == (c.digit >= 0) and row["texture"] in (None, *TEXTURES)
        assert row["lang"] in ("en", *FOREIGN_LANGUAGES, "und") and row["caption_kind"] in (
            "concept",
            "partial",
            "junk",
        )
        assert row["role"] in ROLES and 0 <= row["variant"] < len(VARIANTS)
        assert row["expected_outcome"] == EXPECTED_OUTCOME[Fault(row["fault"])]
        fault, image_id, variant, url_row, ext = URL_RE.match(row["url"]).groups()
        assert (fault, int(image_id), int(variant)) == (row["fault"], row["image_id"], row["variant"])
        assert int(url_row) == (row["same_url_as"] if row["same_url_as"] >= 0 else row["row_id"])
        expected_ext = "png" if row["fault"] in ("tiny", "bomb") else VARIANTS[row["variant"]].ext
        assert ext == expected_ext
        assert (row["width"] is not None) == (Fault(row["fault"]) in SERVES_IMAGE)


def test_every_fault_kind_is_planted(answers):
    counts = {f: answers["fault"].count(str(f)) for f in FAULTS}
    # 6000 rows * 0.15 / 13 kinds = 69 expected per kind
    assert all(40 <= n <= 110 for n in counts.values()), counts
    assert 0.13 < sum(counts.values()) / 6000 < 0.17


def test_concept_frequencies_follow_zipf(answers):
    counts = np.bincount(answers["concept"], minlength=N_CONCEPTS)
    p = concept_probabilities(7, 1.1)
    head, tail = np.argsort(-p)[:5], np.argsort(-p)[-20:]
    assert counts[head].sum() > 0.45 * 6000  # the top 5 of 74 concepts hold about half the rows
    assert counts[tail].sum() < 0.10 * 6000
    assert counts[head[0]] > 10 * counts[tail].mean()
    assert (counts > 0).sum() >= 70  # and the tail is still there


def test_duplicate_clusters(answers):
    role, cluster, image_id = map(np.array, (answers["role"], answers["dup_cluster"], answers["image_id"]))
    urls, variant = np.array(answers["url"]), np.array(answers["variant"])
    ids, sizes = np.unique(cluster[cluster >= 0], return_counts=True)
    assert len(ids) >= 50 and sizes.min() >= 2
    for cid in ids:
        members = cluster == cid
        assert set(image_id[members]) == {cid}
        assert len(set(urls[members])) == members.sum()  # distinct URLs, one image
    distinct_url_rows = role != "dup_url"
    for img, n in zip(*np.unique(image_id[distinct_url_rows], return_counts=True), strict=True):
        assert (n >= 2) == (cluster[distinct_url_rows][image_id[distinct_url_rows] == img][0] >= 0)
    assert set(variant[role == "dup_exact"]) == {0} and variant[role == "dup_near"].min() >= 1
    assert (cluster[(role == "dup_exact") | (role == "dup_near")] >= 0).all()


def test_eval_copies_point_at_real_eval_images(web, answers):
    evals = pq.read_table(web / "eval/synthetic.parquet").to_pydict()
    label_of = dict(zip(evals["image_id"], evals["label"], strict=True))
    copy_of, role, concept = map(np.array, (answers["eval_copy_of"], answers["role"], answers["concept"]))
    copies = np.flatnonzero(copy_of >= 0)
    assert len(copies) >= 30
    assert set(role[copies]) == {"eval_exact", "eval_near"} and set(role[copy_of < 0]).isdisjoint(set(role[copies]))
    for i in copies:
        assert label_of[copy_of[i]] == concept[i] and answers["image_id"][i] == copy_of[i]


def test_repeated_urls_repeat_a_plain_earlier_row(answers):
    repeats = [i for i, j in enumerate(answers["same_url_as"]) if j >= 0]
    assert len(repeats) >= 60
    for i in repeats:
        j = answers["same_url_as"][i]
        assert j < i and answers["url"][i] == answers["url"][j] and answers["role"][i] == "dup_url"
        assert answers["fault"][j] == "ok" and answers["role"][j] == "original" and answers["dup_cluster"][j] == -1


def test_captions_match_their_kind(answers):
    concept_words = set(COLOURS) | set(SHAPES) | set(TEXTURES) | set(DIGIT_WORDS) | {str(d) for d in range(10)}
    concept_words |= {"handwritten", "digit", "hand"}
    for text, kind, lang, c in zip(
        answers["caption"], answers["caption_kind"], answers["lang"], answers["concept"], strict=True
    ):
        words = set(re.findall(r"[a-zà-ÿ0-9]+", text.lower()))
        if kind == "junk":
            assert not (words & concept_words), text
        elif kind == "concept" and lang == "en":
            cc = CONCEPTS[c]
            assert (
                ({cc.colour, cc.shape} <= words)
                if cc.digit < 0
                else (str(cc.digit) in words or DIGIT_WORDS[cc.digit] in words)
            ), text
        elif kind == "concept":
            cc = CONCEPTS[c]
            key = ("shape", SHAPES.index(cc.shape)) if cc.digit < 0 else ("digit", cc.digit)
            native = _WORDS[lang][key[0]][key[1]].lower()
            assert native in text.lower() or (key[0] == "digit" and str(cc.digit) in words), text
    kinds = {k: answers["caption_kind"].count(k) / 6000 for k in ("junk", "partial")}
    assert 0.04 < kinds["junk"] < 0.08 and 0.06 < kinds["partial"] < 0.10
    assert 0.06 < sum(answers["lang"].count(x) for x in FOREIGN_LANGUAGES) / 6000 < 0.10
    assert {lang: answers["lang"].count(lang) > 0 for lang in FOREIGN_LANGUAGES} == dict.fromkeys(
        FOREIGN_LANGUAGES, True
    )


def test_foreign_languages_pick_the_same_rows_and_keep_english(tmp_path, answers):
    """Choosing other foreign languages changes only the foreign captions: the English ones stay as they are."""
    generate(WebConfig(seed=7, foreign_languages=["th", "ar"], **SMALL), tmp_path)
    other = pq.read_table(tmp_path / "answers.parquet").to_pydict()
    foreign = [lang not in ("en", "und") for lang in answers["lang"]]
    assert foreign == [lang not in ("en", "und") for lang in other["lang"]]
    assert {x for x, f in zip(other["lang"], foreign, strict=True) if f} == {"th", "ar"}
    same = [a == b for a, b, f in zip(answers["caption"], other["caption"], foreign, strict=True) if not f]
    assert all(same) and len(same) > 5000
    arabic = next(c for c, lang in zip(other["caption"], other["lang"], strict=True) if lang == "ar")
    assert any(0x0600 <= ord(ch) <= 0x06FF for ch in arabic)  # right to left script


def test_eval_split_is_balanced_and_held_out(web):
    evals = pq.read_table(web / "eval/synthetic.parquet").to_pydict()
    assert (web / "eval/classnames.txt").read_text().splitlines() == [c.class_name for c in CONCEPTS]
    assert np.bincount(evals["label"], minlength=N_CONCEPTS).tolist() == [2] * N_CONCEPTS
    assert all(i >= EVAL_ID_BASE for i in evals["image_id"])
    assert all(name == CONCEPTS[lab].class_name for name, lab in zip(evals["class_name"], evals["label"], strict=True))
    assert all(img[:3] == b"\xff\xd8\xff" for img in evals["image"])  # JPEG


def test_web_json_records_port_counts_and_config(web, tmp_path):
    info = json.loads((web / "web.json").read_text())
    assert info["base_url"] == BASE and info["seed"] == 7 and info["config"]["n_candidates"] == 6000
    assert sum(info["counts"]["by_fault"].values()) == 6000 and info["counts"]["eval_images"] == 2 * N_CONCEPTS
    generate(WebConfig(n_candidates=50, eval_per_concept=1), tmp_path)
    picked = json.loads((tmp_path / "web.json").read_text())["base_url"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", picked) and not picked.endswith(":0")


def test_200k_rows_generate_quickly(tmp_path):
    start = time.monotonic()
    generate(WebConfig(n_candidates=200_000, eval_per_concept=1, base_url=BASE), tmp_path)
    elapsed = time.monotonic() - start
    assert pq.ParquetFile(tmp_path / "candidates.parquet").metadata.num_rows == 200_000
    assert pq.ParquetFile(tmp_path / "answers.parquet").metadata.num_row_groups == 4  # streamed in 64k chunks
    assert elapsed < 30, elapsed
