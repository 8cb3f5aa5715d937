"""Metadata: sources, MetaCLIP merge order and skip rules, determinism, sidecar, `clipforge metadata build|info`."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curation import metadata_sources as src
from curation.metadata import (
    BigramSourceConfig,
    MetadataConfig,
    TitleSourceConfig,
    UnigramSourceConfig,
    WordNetSourceConfig,
    build_metadata,
    load_metadata,
    metadata_info,
    sidecar_path,
    write_metadata,
)
from pipeline.cli import app, main

WORDNET = Path("/usr/share/wordnet")

# Lines in the WordNet 3.0 data-file format (offset lex_filenum ss_type w_cnt word lex_id ... | gloss).
FAKE_WORDNET = {
    "data.noun": [
        "  1 This software and database is being provided to you, the LICENSEE, by Princeton University",
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known to exist",
        '02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 | a member of the genus Canis; "the dog barked"',
        "09044862 15 n 02 United_States 0 US 0 | North American republic",
        "12262553 20 n 01 St._John's_wort 0 | a herb",
        "02085374 05 n 01 Dog 0 | a second synset whose head is also dog",
    ],
    "data.verb": ["01168468 34 v 01 eat 0 | take in solid food; golden retriever golden retriever"],
    "data.adj": ["00001740 00 a 01 able 0 | having the means", "01380267 00 s 01 galore(ip) 0 | in abundance"],
    "data.adv": ["00001741 02 r 01 a_cappella 0 | without musical accompaniment"],
}
FAKE_HEADS = ["a cappella", "able", "dog", "eat", "entity", "galore", "st", "united states"]


@pytest.fixture()
def fake_wordnet(tmp_path) -> Path:
    d = tmp_path / "wordnet"
    d.mkdir()
    for name, lines in FAKE_WORDNET.items():
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def test_wordnet_head_lemmas_follow_nltk_synset_names(fake_wordnet):
    # name = ss.name(); name[:name.find('.')].replace('_', ' '): first lemma, lower-cased, marker stripped
    assert src.wordnet_head_lemmas(fake_wordnet) == FAKE_HEADS


def test_real_wordnet_has_metaclips_size():
    if not (WORDNET / "data.noun").is_file():
        pytest.fail("WordNet 3.0 dict files missing: install the Debian package wordnet-base (scripts/sysdeps.sh)")
    heads = src.wordnet_head_lemmas(WORDNET)
    assert 86_000 < len(heads) < 87_000  # MetaCLIP Table 1: 86,654 WordNet synset entries
    assert {"dog", "golden retriever", "united states"} <= set(heads) and "Dog" not in heads


def test_wordfreq_unigrams_are_ranked_and_clean():
    words = src.wordfreq_unigrams(min_zipf=5.0)
    assert words[:4] == ["the", "to", "and", "of"]
    assert all(not any(c.isdigit() for c in w) and any(c.isalpha() for c in w) for w in words)
    assert len(src.wordfreq_unigrams(min_zipf=1.0)) > 300_000


def test_pmi_bigrams_rank_and_thresholds():
    lines = ["golden retriever puppy", "a golden retriever", "the golden retriever, the dog", "the dog and the cat"]
    pairs = src.pmi_bigrams(lines, min_count=2, min_pmi=0.0)
    # N = 16 tokens; golden retriever: log2(3 * 16 / (3 * 3)); the dog: log2(2 * 16 / (4 * 2)) = 2
    assert pairs == [("golden retriever", pytest.approx(2.4150375)), ("the dog", 2.0)]
    assert src.pmi_bigrams(lines, min_count=2, min_pmi=2.1) == [("golden retriever", pytest.approx(2.4150375))]
    assert src.pmi_bigrams(lines, min_count=4, min_pmi=0.0) == []
    # punctuation breaks the chain: "retriever, the" is not a bigram
    assert ("retriever", "the") not in src.count_ngrams(lines, lowercase=True)[1]


def test_read_titles(tmp_path):
    p = tmp_path / "titles.tsv"
    p.write_text(
        "Low_count\t3\nNew_York_City\t500\nTalk:Foo\t900\nBarack_Obama\t800\nNo count line\n\nNew_York_City\t90\n"
    )
    assert src.read_titles(p, min_count=70) == ["Barack Obama", "New York City", "No count line"]
    p.write_text("Bad\tmany\n")
    with pytest.raises(ValueError, match="line 1: count 'many'"):
        src.read_titles(p, min_count=1)


def _small_config(tmp_path, fake_wordnet, **kw) -> MetadataConfig:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("golden retriever\n" * 3 + "hot dog\n" * 2 + "the cat , the\n")
    titles = tmp_path / "titles.tsv"
    titles.write_text("New_York_City\t500\n.\t400\nhot dog\t300\nThe_Cat\t200\n")
    return MetadataConfig(
        output=tmp_path / "out" / "metadata.json",
        wordnet=WordNetSourceConfig(dir=fake_wordnet),
        unigrams=UnigramSourceConfig(min_zipf=5.0, max_entries=5),
        bigrams=BigramSourceConfig(wordnet_glosses=False, corpus=corpus, min_count=2, min_pmi=0.0),
        titles=TitleSourceConfig(path=titles, min_count=70),
        **kw,
    )


def test_build_merges_sources_in_metaclip_order(tmp_path, fake_wordnet):
    cfg = _small_config(tmp_path, fake_wordnet, target=None)
    built = build_metadata(cfg)
    e = built.entries
    unigrams = src.wordfreq_unigrams(5.0)
    assert e[:100] == [str(i) for i in range(100)]
    assert e[100:108] == FAKE_HEADS
    assert e[108:113] == unigrams[:5]  # capped at max_entries before bigrams and titles
    assert e[113:115] == ["hot dog", "golden retriever"]  # PMI 6.5 vs 13/3 (ratio form), N = 13
    assert e[115:117] == ["New York City", "The Cat"]  # "." skipped (single punctuation), "hot dog" seen
    assert e[117:] == [w for w in unigrams[5:] if w not in FAKE_HEADS]  # top-up: the rest of the ranking
    assert len(set(e)) == len(e)
    spans = [(name, stop - start) for name, start, stop in built.spans]
    assert spans == [
        ("numbers", 100),
        ("wordnet", 8),
        ("unigrams", 5),
        ("bigrams", 2),
        ("titles", 2),
        ("unigrams", len(e) - 117),
    ]
    assert built.counts() == {"numbers": 100, "wordnet": 8, "unigrams": len(e) - 112, "bigrams": 2, "titles": 2}


def test_target_stops_the_fill(tmp_path, fake_wordnet):
    built = build_metadata(_small_config(tmp_path, fake_wordnet, target=104))
    assert built.entries == [str(i) for i in range(100)] + FAKE_HEADS[:4]
    assert built.counts()["wordnet"] == 4 and built.counts()["unigrams"] == 0


def test_write_is_deterministic_frozen_and_has_a_sidecar(tmp_path, fake_wordnet):
    cfg = _small_config(tmp_path, fake_wordnet, target=150)
    path, side = write_metadata(build_metadata(cfg), cfg)
    first = path.read_bytes(), side.read_bytes()
    with pytest.raises(FileExistsError, match="frozen"):
        write_metadata(build_metadata(cfg), cfg)
    cfg.overwrite = True
    write_metadata(build_metadata(cfg), cfg)
    assert (path.read_bytes(), side.read_bytes()) == first
    meta = json.loads(side.read_text())
    assert side == sidecar_path(path) and side.name == "metadata.sources.json"
    assert meta["n_entries"] == 150 and sum(meta["sources"].values()) == 150
    assert load_metadata(path) == build_metadata(cfg).entries


def test_info_on_a_plain_metaclip_list(tmp_path):
    p = tmp_path / "metadata.json"
    p.write_text(json.dumps(["dog", "The", "dog", "", ".", "golden retriever"]))
    info = metadata_info(p)
    assert info["sidecar"] == "absent" and info["sources"] is None
    assert (info["n_entries"], info["n_unique"], info["n_duplicates"]) == (6, 5, 1)
    assert (info["n_empty"], info["n_single_punctuation"], info["n_multiword"]) == (1, 1, 1)
    assert info["sample"][:2] == [[0, "dog"], [1, "The"]]
    (tmp_path / "metadata.sources.json").write_text(json.dumps({"sha256": "0" * 64, "sources": {}}))
    assert metadata_info(p)["sidecar"] == "stale"


@pytest.mark.parametrize(
    "content,message",
    [("{}", "must hold a JSON list"), ('["a", 3]', "entry 1 is a int"), ("[", "not valid JSON")],
)
def test_load_metadata_errors_name_the_problem(tmp_path, content, message):
    p = tmp_path / "m.json"
    p.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_metadata(p)


def test_cli_build_and_info(tmp_path, capsys):
    out = tmp_path / "metadata.json"
    result = CliRunner().invoke(app, ["metadata", "build", "--target", "3000", "-o", str(out)])
    assert result.exit_code == 0, result.output
    entries = load_metadata(out)
    assert len(entries) == len(set(entries)) == 3000 and entries[:100] == [str(i) for i in range(100)]
    assert "wrote 3000 entries" in result.output
    info = CliRunner().invoke(app, ["metadata", "info", str(out)])
    assert info.exit_code == 0 and "3000 entries, 3000 unique, 0 duplicates" in info.output
    assert re.search(r"wordnet\s+2900\n", info.output) and re.search(r"numbers\s+100\n", info.output)
    with pytest.raises(SystemExit) as exc:  # written once: a second build is refused, exit 2, no traceback
        main(["metadata", "build", "--target", "3000", "-o", str(out)])
    assert exc.value.code == 2 and "frozen" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["metadata", "build", "--set", "target=many", "-o", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "target" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_build_500k_target_gives_400k_unique_entries_offline(tmp_path):
    out = tmp_path / "metadata.json"
    result = CliRunner().invoke(app, ["metadata", "build", "--target", "500000", "-o", str(out)])
    assert result.exit_code == 0, result.output
    entries = load_metadata(out)
    assert len(entries) == len(set(entries)) >= 400_000
    counts = json.loads(sidecar_path(out).read_text())["sources"]
    assert counts["wordnet"] > 80_000 and counts["unigrams"] > 250_000 and counts["bigrams"] > 40_000
