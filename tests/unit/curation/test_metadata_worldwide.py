"""Worldwide metadata: one list per language from offline sources, sources.json, single CJK characters, the CLI."""

import json

import pytest
import wordfreq
from typer.testing import CliRunner

from curation.charclass import is_no_space_char
from curation.metadata import MetadataConfig, load_metadata
from curation.metadata_worldwide import (
    SOURCES_FILE,
    WorldwideMetadataConfig,
    build_worldwide,
    keep_entry,
    language_entries,
    metadata_lists,
    offline_languages,
    resolve_languages,
)
from pipeline.cli import app, main

SMALL_EN = MetadataConfig(bigrams={"wordnet_glosses": False})  # numbers + WordNet fill a small target


def test_offline_languages_are_wordfreqs_plus_english():
    langs = offline_languages()
    assert {"en", "de", "ru", "zh", "ja", "ko", "ar"} <= set(langs) and "th" not in langs
    assert len(langs) == len(set(wordfreq.available_languages("best")) | {"en"}) >= 40
    assert resolve_languages(["de", "en", "de"]) == ["de", "en"]
    with pytest.raises(ValueError, match=r"no offline source for language\(s\) \['th'\]"):
        resolve_languages(["de", "th"])


def test_language_entries_numbers_then_words_by_frequency():
    cfg = WorldwideMetadataConfig(target=600)
    entries, sources = language_entries("de", cfg)
    assert entries[:100] == [str(i) for i in range(100)] and sources == {"numbers": 100, "unigrams": 500}
    assert entries[100:105] == ["die", "der", "und", "in", "das"]  # function words kept (balancing caps them)
    assert len(set(entries)) == len(entries) == 600
    capped, _ = language_entries("de", WorldwideMetadataConfig(target=None, unigram_cap=50, capitalised=[]))
    assert len(capped) == 150


def test_german_words_also_capitalised_after_the_folded_list():
    entries, sources = language_entries("de", WorldwideMetadataConfig(target=None, unigram_cap=2000))
    folded = entries[: 100 + 2000]
    assert sources["unigrams"] == 2000 and "kreis" in folded and "Kreis" not in folded  # wordfreq folds case
    upper = dict.fromkeys(w[:1].upper() + w[1:] for w in folded[100:])
    assert entries[2100:] == [w for w in upper if w not in folded]
    assert "Kreis" in entries and len(entries) == len(set(entries)) == 2100 + sources["capitalised"]
    french, _ = language_entries("fr", WorldwideMetadataConfig(target=None, unigram_cap=2000))
    assert len(french) == 2100  # only the languages of `capitalised` (German)


def test_single_cjk_characters_kept_by_default_and_droppable():
    keep_all = WorldwideMetadataConfig(target=400)
    zh, _ = language_entries("zh", keep_all)
    assert "的" in zh and "猫" not in zh[:10]
    singles = [e for e in zh[100:] if len(e) == 1]
    assert len(singles) > 50
    no_singles, _ = language_entries("zh", WorldwideMetadataConfig(target=400, min_chars_no_space=2))
    assert "的" not in no_singles and len(no_singles) == 400
    assert not [e for e in no_singles if len(e) == 1 and is_no_space_char(e)]
    assert keep_entry("ab", keep_all) and not keep_entry("《》", keep_all) and not keep_entry("a\tb", keep_all)
    assert keep_entry("a", WorldwideMetadataConfig(min_chars_no_space=2))  # only no-space scripts are affected


def test_build_writes_lists_and_sources(tmp_path):
    out = tmp_path / "meta"
    cfg = WorldwideMetadataConfig(output=out, languages=["en", "zh", "ja"], target=300, english=SMALL_EN)
    record = build_worldwide(cfg)
    assert sorted(p.name for p in out.iterdir()) == ["en.json", "ja.json", SOURCES_FILE, "zh.json"]
    assert {lang: v["n_entries"] for lang, v in record["languages"].items()} == {"en": 300, "zh": 300, "ja": 300}
    assert record["languages"]["en"]["sources"] == {"numbers": 100, "wordnet": 200}
    assert json.loads((out / SOURCES_FILE).read_text(encoding="utf-8")) == record
    lists = metadata_lists(out)
    assert sorted(lists) == ["en", "ja", "zh"] and lists["zh"] == load_metadata(out / "zh.json")
    with pytest.raises(FileExistsError, match="frozen"):
        build_worldwide(cfg)


def test_single_file_list_means_english(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(["dog", "cat"]))
    assert metadata_lists(path) == {"en": ["dog", "cat"]}


def test_cli_languages_builds_a_directory(tmp_path, capsys):
    out = tmp_path / "ww"
    res = CliRunner().invoke(
        app, ["metadata", "build", "--languages", "de,ko", "--target", "250", "-o", str(out)], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "de: 250 entries (numbers 100, unigrams 150)" in res.output and "wrote 2 language lists" in res.output
    assert len(load_metadata(out / "ko.json")) == 250
    with pytest.raises(SystemExit) as exc:  # written once: a second build is refused, exit 2, no traceback
        main(["metadata", "build", "--languages", "de", "-o", str(out)])
    assert exc.value.code == 2 and "frozen" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["metadata", "build", "--languages", "xx", "-o", str(tmp_path / "x")])
    assert exc.value.code == 2 and "no offline source for language(s) ['xx']" in capsys.readouterr().err
