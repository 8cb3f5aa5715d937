"""Planted targets of the model-based filters (#22): semantic duplicates pHash misses, captions of another concept;
off by default, listed in the answers file when on."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.phash import hamming, phash64
from infra.localweb.concepts import CONCEPTS
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.render import FIRST_SEMANTIC_VARIANT, N_NEAR_VARIANTS, VARIANTS, image_bytes

BASE = "http://127.0.0.1:8431"


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    cfg = WebConfig(seed=9, n_candidates=3000, base_url=BASE, semantic_dup_rate=0.05, caption_mismatch_rate=0.1)
    generate(cfg, out)
    return cfg, pq.read_table(out / "answers.parquet").to_pandas()


def test_semantic_duplicates_show_an_earlier_plain_rows_image_and_are_no_phash_cluster(answers):
    _, a = answers
    sem = a[a.role == "dup_semantic"]
    assert 100 < len(sem) < 200  # ~5 % of 3,000
    src = a.set_index("row_id").loc[sem.semantic_dup_of]
    assert (sem.semantic_dup_of.to_numpy() < sem.row_id.to_numpy()).all()
    assert (src.role.to_numpy() == "original").all() and (src.fault.to_numpy() == "ok").all()
    assert (sem.image_id.to_numpy() == src.image_id.to_numpy()).all()
    assert (sem.concept.to_numpy() == src.concept.to_numpy()).all()
    assert (sem.variant >= FIRST_SEMANTIC_VARIANT).all() and (sem.variant < len(VARIANTS)).all()
    assert (sem.dup_cluster == -1).all() and (a[a.role != "dup_semantic"].semantic_dup_of == -1).all()


def test_semantic_variants_move_the_phash_beyond_the_near_dup_radius(answers):
    cfg, a = answers
    sem = a[a.role == "dup_semantic"].head(30)
    far = 0
    for image_id, variant in zip(sem.image_id, sem.variant, strict=True):
        pair = [Image.open(io.BytesIO(image_bytes(cfg, int(image_id), v))).convert("RGB") for v in (0, int(variant))]
        far += int(hamming(*phash64(pair)) > 4)  # dedup.k = 4: the default near-dup radius
    assert far >= 27  # pHash misses (nearly) all of them; near variants stay within it (test_localweb_generate)
    assert N_NEAR_VARIANTS == 5


def test_mismatched_captions_describe_another_concept(answers):
    _, a = answers
    mm = a[a.caption_mismatch]
    plain = a[(a.role == "original") & (a.fault == "ok") & (a.dup_cluster == -1) & (a.caption_kind != "junk")]
    assert 0.06 < len(mm) / len(plain) < 0.14
    assert (mm.caption_concept != mm.concept).all()
    assert (a[~a.caption_mismatch].caption_concept == a[~a.caption_mismatch].concept).all()
    english = mm[(mm.caption_kind == "concept") & (mm.lang == "en")]
    named = [  # partial captions name the shape or the colour only: check the last word (shape or digit word)
        CONCEPTS[int(c)].class_name.split()[-1] in cap
        for c, cap in zip(english.caption_concept, english.caption, strict=True)
    ]
    assert np.mean(named) > 0.8  # the caption names the other concept (templates may use a synonym)


def test_plants_are_off_by_default(tmp_path):
    generate(WebConfig(seed=9, n_candidates=500, base_url=BASE), tmp_path)
    a = pq.read_table(tmp_path / "answers.parquet").to_pandas()
    assert "dup_semantic" not in set(a.role) and not a.caption_mismatch.any()
    assert (a.semantic_dup_of == -1).all() and (a.caption_concept == a.concept).all()
