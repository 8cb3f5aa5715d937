"""Worldwide (Meta CLIP 2) metadata: one MetaCLIP-format list per language in a directory, built offline. No Ray.

A metadata directory holds `{lang}.json` (a JSON list of strings; entry id = index within that list) per language
and `sources.json` (what each list was built from, its checksum, the config). A single-file list — today's format —
means `{"en": list}` everywhere (`metadata_lists`).

Sources, offline only (Meta CLIP 2 uses Wikipedia unigrams/bigrams/titles and multilingual WordNet per language,
none of which ships in a wheel):
- `en`: today's English build (`curation.metadata.build_metadata`: numbers, WordNet, wordfreq unigrams, PMI bigrams,
  titles), unchanged.
- every other language wordfreq has (its "best" list: `large` where wordfreq has one, else `small`): the numbers
  "0".."99" (Meta CLIP 2 adds them in every language), then wordfreq's words most frequent first, up to Meta CLIP 2's
  per-language unigram cap (251,465) and the `target`. Bigrams need a corpus (none offline); titles need pageviews.
- Case: wordfreq folds case and matching is case-sensitive, so for the languages of `capitalised` (German, which
  capitalises every noun) each word is also added capitalised ("Kreis" beside "kreis"), after the folded list.
- Function words are kept, as MetaCLIP keeps "the" and "of": they are among the most frequent entries, and
  balancing caps each entry at t_lang matches, which is what flattens them (a caption matched only by function
  words is rarely kept). Meta CLIP 2 likewise keeps the top unigrams of each language unfiltered.
- Single CJK characters: wordfreq's Chinese and Japanese lists hold single characters that its segmenter emits as
  words (猫 "cat", 的, の). They are kept (Meta CLIP 2's top-10 % unigrams keep them too); under the spaced-metadata
  rule a single ideograph matches wherever it occurs, also inside longer words, so such entries sit at the head of
  the counts and t_lang caps them. `min_chars_no_space: 2` drops every entry of a single no-space character.
- Dropped as in MetaCLIP/Meta CLIP 2: empty, longer than 256 characters, made only of punctuation, holding a tab,
  newline or CR (`spacing()` turns those into spaces); wordfreq tokens with a digit (wordfreq folds digits to "0")
  or without a letter (emoji, symbols).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from curation import metadata_sources as src
from curation.charclass import is_no_space_char, is_punctuation
from curation.metadata import MetadataConfig, build_metadata, is_valid_entry, load_metadata
from curation.strict import StrictModel

SOURCES_FILE = "sources.json"
SOURCES_FORMAT = "clipforge.metadata.worldwide/1"
UNIGRAM_CAP = 251_465  # Meta CLIP 2 `build_metadata.py`: unigrams per language, at most English MetaCLIP 1's count


def offline_languages() -> list[str]:
    """Languages with an offline source: English plus every language of wordfreq's "best" lists, sorted."""
    import wordfreq

    return sorted(set(wordfreq.available_languages("best")) | {"en"})


class WorldwideMetadataConfig(StrictModel):
    """`clipforge metadata build --languages ...`: one list per language in a directory."""

    output: Path = Path("metadata")
    """Directory to write: {lang}.json per language and sources.json."""
    languages: list[str] | Literal["all"] = "all"
    """Languages to build (wordfreq codes: en, de, zh, ja, ...); all: every language with an offline source."""
    target: int | None = 500_000
    """At most this many entries per language (English: its build's target, MetaCLIP's 500k)."""
    unigram_cap: int = Field(UNIGRAM_CAP, ge=0)
    """Non-English: at most this many wordfreq words (Meta CLIP 2's per-language unigram cap)."""
    min_zipf: float = 1.0
    """Non-English: keep words with Zipf frequency >= this (1.0: the whole wordfreq list)."""
    capitalised: list[str] = ["de"]
    """Non-English languages whose words are also added capitalised ("Kreis" beside "kreis"), after the folded list so
    its ids stay: wordfreq case-folds every word, matching is case-sensitive, and German capitalises every noun."""
    min_chars_no_space: int = Field(1, ge=1)
    """Drop entries made of fewer characters than this when all are no-space (CJK, Thai, ...) characters; 1 keeps
    single ideographs such as 猫, 2 drops them."""
    max_entry_chars: int = 256
    """Skip longer entries (Meta CLIP 2's rule)."""
    overwrite: bool = False
    """Entry ids are frozen once written: replacing existing lists must be asked for."""
    english: MetadataConfig = Field(default_factory=MetadataConfig)
    """The English list's sources (as `clipforge metadata build` without --languages); its output is ignored."""


def keep_entry(entry: str, cfg: WorldwideMetadataConfig) -> bool:
    """The skip rules of the module docstring for one candidate entry."""
    if not is_valid_entry(entry, cfg.max_entry_chars) or all(is_punctuation(c) for c in entry):
        return False
    return len(entry) >= cfg.min_chars_no_space or not all(is_no_space_char(c) for c in entry)


def language_entries(lang: str, cfg: WorldwideMetadataConfig) -> tuple[list[str], dict[str, int]]:
    """(entries, entries per source) of one non-English language: numbers, then wordfreq words by frequency."""
    numbers = src.numbers()
    words, seen = [], set(numbers)
    cap = cfg.unigram_cap if cfg.target is None else min(cfg.unigram_cap, max(cfg.target - len(numbers), 0))
    for w in src.wordfreq_unigrams(cfg.min_zipf, lang, "best"):
        if len(words) >= cap:
            break
        if w not in seen and keep_entry(w, cfg):
            seen.add(w)
            words.append(w)
    entries = numbers[: cfg.target] if cfg.target is not None else numbers
    counts = {"numbers": len(entries), "unigrams": len(words)}
    if lang in cfg.capitalised:
        room = None if cfg.target is None else max(cfg.target - len(entries) - len(words), 0)
        upper = [
            u for u in dict.fromkeys(w[:1].upper() + w[1:] for w in words) if u not in seen and keep_entry(u, cfg)
        ]
        upper = upper[:room]
        words += upper
        if upper:
            counts["capitalised"] = len(upper)
    return entries + words, counts


def build_language(lang: str, cfg: WorldwideMetadataConfig) -> tuple[list[str], dict[str, int]]:
    """(entries, entries per source) of `lang`: English through today's build, the others from wordfreq."""
    if lang == "en":
        english = cfg.english.model_copy(update={"target": cfg.target})
        built = build_metadata(english)
        return built.entries, {k: v for k, v in built.counts().items() if v}
    return language_entries(lang, cfg)


def resolve_languages(languages: list[str] | Literal["all"]) -> list[str]:
    """The languages to build; an unknown one is a ValueError naming it and the offline languages."""
    offline = offline_languages()
    if languages == "all":
        return offline
    unknown = [lang for lang in languages if lang not in offline]
    if unknown:
        raise ValueError(f"no offline source for language(s) {unknown}; offline languages: {', '.join(offline)}")
    return list(dict.fromkeys(languages))


def write_language(out: Path, lang: str, entries: list[str]) -> str:
    """Write `{out}/{lang}.json` atomically; returns its sha256."""
    data = json.dumps(entries, ensure_ascii=False).encode("utf-8")
    tmp = out / f".{lang}.json.tmp-{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, out / f"{lang}.json")
    return hashlib.sha256(data).hexdigest()


def build_worldwide(cfg: WorldwideMetadataConfig, say=lambda line: None) -> dict:
    """Build and write every language's list and `sources.json` (written last); returns the sources record.
    Refuses to write into a directory that already holds lists unless `cfg.overwrite`."""
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} is a file; a worldwide build writes a directory")
    if out.is_dir() and any(out.glob("*.json")) and not cfg.overwrite:
        raise FileExistsError(f"{str(out)!r} already holds metadata; entry ids are frozen once written (overwrite)")
    languages = resolve_languages(cfg.languages)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"format": SOURCES_FORMAT, "languages": {}}
    for lang in languages:
        entries, sources = build_language(lang, cfg)
        sha = write_language(out, lang, entries)
        record["languages"][lang] = {"n_entries": len(entries), "sha256": sha, "sources": sources}
        say(f"{lang}: {len(entries)} entries ({', '.join(f'{k} {v}' for k, v in sources.items())})")
    record["versions"] = {"wordfreq": _wordfreq_version(), "wordnet": "3.0"}
    record["config"] = cfg.model_dump(mode="json", exclude={"overwrite"})
    (out / SOURCES_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


def _wordfreq_version() -> str:
    from importlib import metadata as importlib_metadata

    return importlib_metadata.version("wordfreq")


def metadata_lists(path: Path) -> dict[str, list[str]]:
    """{lang: entries} of a metadata directory (`{lang}.json` files, `sources.json` aside) or of a single-file list,
    which is English: `{"en": list}`."""
    path = Path(path)
    if not path.is_dir():
        return {"en": load_metadata(path)}
    files = sorted(p for p in path.glob("*.json") if p.name != SOURCES_FILE)
    return {p.stem: load_metadata(p) for p in files}
