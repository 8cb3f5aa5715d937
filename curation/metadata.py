"""MetaCLIP-format metadata: load a JSON list of entries (id = index), build one offline, summarise it. No Ray.

The build merges its sources in MetaCLIP's order — the numbers "0".."99", WordNet synset head lemmas, unigrams,
PMI bigrams, titles — skipping what MetaCLIP skips, each source up to its cap, then tops up from the rest of the
unigram ranking until `target`. The order is deterministic and frozen once written: entry ids are list indices.
A sidecar `<name>.sources.json` records which id range came from which source, the checksum and the config.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from curation import metadata_sources as src
from curation.strict import StrictModel

SIDECAR_FORMAT = "clipforge.metadata.sources/1"
SOURCES = ("numbers", "wordnet", "unigrams", "bigrams", "titles")
# MetaCLIP: `forbidden = set(string.punctuation)`; `if len(entry) > 0 and entry not in forbidden`.
_FORBIDDEN = frozenset(string.punctuation)


class WordNetSourceConfig(StrictModel):
    """WordNet synset head lemmas (MetaCLIP: 86,654 entries)."""

    enabled: bool = True
    """Include the WordNet source (MetaCLIP does)."""
    dir: Path = Path("/usr/share/wordnet")
    """WordNet 3.0 dict directory holding data.noun/verb/adj/adv (Debian package wordnet-base)."""


class UnigramSourceConfig(StrictModel):
    """English unigrams from wordfreq's bundled list (stands in for MetaCLIP's Wikipedia unigram counts >= 100)."""

    enabled: bool = True
    """Include the unigram source (MetaCLIP does)."""
    min_zipf: float = 1.0
    """Keep words with Zipf frequency >= this (1.0 = the whole 'large' list; 3.0 is once per million words)."""
    wordlist: Literal["large", "small"] = "large"
    """wordfreq list: 'large' (~320k English words) or 'small' (~29k)."""
    max_entries: int | None = 251_465
    """Cap before bigrams and titles get their turn (MetaCLIP's unigram count); the rest tops up to target."""


class BigramSourceConfig(StrictModel):
    """Bigrams ranked by PMI (MetaCLIP: Wikipedia n-gram counts, PMI >= 30, 100,646 entries). Counts are pooled
    over WordNet's glosses (offline, always at hand) and an optional user corpus."""

    wordnet_glosses: bool = True
    """Count bigrams in WordNet's gloss and example sentences (~1.5M words, from wordnet.dir)."""
    corpus: Path | None = None
    """A UTF-8 text file (.gz allowed) to count as well, e.g. a Wikipedia dump as plain text."""
    min_count: int = 2
    """A bigram must occur at least this often (PMI alone favours pairs of rare words)."""
    min_pmi: float = 3.0
    """log2 PMI threshold. MetaCLIP's 30 only makes sense at Wikipedia scale: PMI <= log2(corpus tokens)."""
    lowercase: bool = True
    """Lower-case the text before counting."""
    max_entries: int | None = 100_646
    """At most this many bigrams, best PMI first (MetaCLIP's bigram count)."""


class TitleSourceConfig(StrictModel):
    """Titles (MetaCLIP: Wikipedia titles with summed pageviews >= 70, 61,235 entries)."""

    path: Path | None = None
    """Text file, one `title` or `title<TAB>count` per line; None skips this source."""
    min_count: int = 70
    """Keep titles whose count is >= this (lines without a count are kept)."""
    max_entries: int | None = 61_235
    """At most this many titles, highest count first (MetaCLIP's title count)."""


class MetadataConfig(StrictModel):
    """`clipforge metadata build`: which sources, in which amounts, written where."""

    output: Path = Path("metadata.json")
    """The JSON list to write; the sidecar goes next to it as <stem>.sources.json."""
    target: int | None = 500_000
    """Stop once this many entries are collected (MetaCLIP: 500k); None takes every source whole."""
    overwrite: bool = False
    """Entry ids are frozen once written: replacing an existing list must be asked for."""
    numbers: bool = True
    """Start with "0".."99" as MetaCLIP does."""
    max_entry_chars: int = 256
    """Skip longer entries (MetaCLIP 2's rule)."""
    wordnet: WordNetSourceConfig = Field(default_factory=WordNetSourceConfig)
    """WordNet synset head lemmas."""
    unigrams: UnigramSourceConfig = Field(default_factory=UnigramSourceConfig)
    """Unigrams by frequency (wordfreq)."""
    bigrams: BigramSourceConfig = Field(default_factory=BigramSourceConfig)
    """PMI bigrams (WordNet glosses and/or a corpus)."""
    titles: TitleSourceConfig = Field(default_factory=TitleSourceConfig)
    """Titles file (optional)."""


@dataclass
class BuiltMetadata:
    """A metadata list and where each id range came from: `spans` are (source, start, stop), in fill order."""

    entries: list[str] = field(default_factory=list)
    spans: list[tuple[str, int, int]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Entries per source (a source with two spans, e.g. unigrams topping up, is summed)."""
        out = dict.fromkeys(SOURCES, 0)
        for name, start, stop in self.spans:
            out[name] = out.get(name, 0) + stop - start
        return out


def is_valid_entry(entry: str, max_chars: int) -> bool:
    """MetaCLIP's skip rule (empty or a single punctuation character), MetaCLIP 2's length cap, and no
    tab/newline/CR: `spacing()` turns those into spaces in the text, so such an entry could never match."""
    return (
        0 < len(entry) <= max_chars
        and entry not in _FORBIDDEN
        and "\t" not in entry
        and "\n" not in entry
        and "\r" not in entry
    )


class _Filler:
    """Appends new, valid entries source by source until the target."""

    def __init__(self, target: int | None, max_chars: int):
        self.out = BuiltMetadata()
        self.seen: set[str] = set()
        self.target, self.max_chars = target, max_chars

    def full(self) -> bool:
        return self.target is not None and len(self.out.entries) >= self.target

    def take(self, source: str, candidates: Iterator[str], cap: int | None) -> None:
        """Add candidates (consumed lazily, so a later call continues where this one stopped) until the source
        has added `cap` entries or the list is full."""
        start = len(self.out.entries)
        while not self.full() and (cap is None or len(self.out.entries) - start < cap):
            entry = next(candidates, None)
            if entry is None:
                break
            if entry not in self.seen and is_valid_entry(entry, self.max_chars):
                self.seen.add(entry)
                self.out.entries.append(entry)
        if len(self.out.entries) > start:
            self.out.spans.append((source, start, len(self.out.entries)))


def build_metadata(cfg: MetadataConfig) -> BuiltMetadata:
    """Build the list in MetaCLIP's source order (numbers, WordNet, unigrams, bigrams, titles), each source up
    to its `max_entries`, then the rest of the unigram ranking until `target`. Deterministic for fixed inputs
    (WordNet files, wordfreq version, corpus, titles file)."""
    fill = _Filler(cfg.target, cfg.max_entry_chars)
    if cfg.numbers:
        fill.take("numbers", iter(src.numbers()), None)
    if cfg.wordnet.enabled:
        fill.take("wordnet", iter(src.wordnet_head_lemmas(cfg.wordnet.dir)), None)
    unigrams: Iterator[str] = iter(())
    if cfg.unigrams.enabled and not fill.full():
        unigrams = iter(src.wordfreq_unigrams(cfg.unigrams.min_zipf, "en", cfg.unigrams.wordlist))
        fill.take("unigrams", unigrams, cfg.unigrams.max_entries)
    b = cfg.bigrams
    if (b.wordnet_glosses or b.corpus is not None) and not fill.full():
        lines = itertools.chain(
            src.wordnet_glosses(cfg.wordnet.dir) if b.wordnet_glosses else (),
            src.read_lines(b.corpus) if b.corpus is not None else (),
        )
        pairs = src.pmi_bigrams(lines, b.min_count, b.min_pmi, b.lowercase)
        fill.take("bigrams", (bigram for bigram, _ in pairs), b.max_entries)
    if cfg.titles.path is not None and not fill.full():
        fill.take("titles", iter(src.read_titles(cfg.titles.path, cfg.titles.min_count)), cfg.titles.max_entries)
    fill.take("unigrams", unigrams, None)  # top up from the rest of the unigram ranking
    return fill.out


def sidecar_path(path: Path) -> Path:
    """`metadata.json` -> `metadata.sources.json` (same directory)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.sources.json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    from importlib import metadata as importlib_metadata

    try:
        wordfreq_version = importlib_metadata.version("wordfreq")
    except importlib_metadata.PackageNotFoundError:
        wordfreq_version = "not installed"
    return {"wordfreq": wordfreq_version, "wordnet": "3.0"}


def write_metadata(built: BuiltMetadata, cfg: MetadataConfig) -> tuple[Path, Path]:
    """Write `cfg.output` (a JSON list of strings, UTF-8) and its sidecar, each atomically. Refuses to replace
    an existing list unless `cfg.overwrite` (ids are frozen once written). Returns (list path, sidecar path)."""
    out = Path(cfg.output)
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{str(out)!r} exists; entry ids are frozen once written (set overwrite: true)")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(built.entries, ensure_ascii=False).encode("utf-8")
    sidecar = {
        "format": SIDECAR_FORMAT,
        "metadata_file": out.name,
        "sha256": _sha256(data),
        "n_entries": len(built.entries),
        "sources": built.counts(),
        "spans": [list(s) for s in built.spans],
        "versions": _versions(),
        "config": cfg.model_dump(mode="json", exclude={"overwrite"}),
    }
    side = sidecar_path(out)
    _atomic_write(out, data)
    _atomic_write(side, json.dumps(sidecar, indent=2).encode("utf-8") + b"\n")
    return out, side


def parse_metadata(data: bytes, source: str = "metadata") -> list[str]:
    """Parse MetaCLIP's `metadata.json` format: a JSON array of strings. Errors name `source` and the index."""
    try:
        entries = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(entries, list):
        raise ValueError(f"{source} must hold a JSON list of strings, not a {type(entries).__name__}")
    for i, e in enumerate(entries):
        if not isinstance(e, str):
            raise ValueError(f"{source}: entry {i} is a {type(e).__name__} ({e!r}), not a string")
    return entries


def load_metadata(path: Path) -> list[str]:
    """Entries of a MetaCLIP-format list (ours or MetaCLIP's released 500k); entry id = list index."""
    return parse_metadata(Path(path).read_bytes(), repr(str(path)))


def summarize_entries(entries: Iterable[str], sample: int = 10) -> dict:
    """count, unique, duplicates (entries equal to an earlier one), empty, single-punctuation (MetaCLIP skips
    both), multi-word, and an evenly spaced sample of `sample` entries with their ids."""
    entries = list(entries)
    n = len(entries)
    step = max(1, n // sample) if n else 1
    return {
        "n_entries": n,
        "n_unique": len(set(entries)),
        "n_duplicates": n - len(set(entries)),
        "n_empty": sum(1 for e in entries if not e),
        "n_single_punctuation": sum(1 for e in entries if e in _FORBIDDEN),
        "n_multiword": sum(1 for e in entries if " " in e),
        "sample": [[i, entries[i]] for i in range(0, n, step)][:sample],
    }


def metadata_info(path: Path) -> dict:
    """`summarize_entries` of a list file plus its sha256, and the per-source counts from the sidecar when one
    exists and matches the file (`sidecar` is then "ok"; "absent" or "stale" otherwise)."""
    data = Path(path).read_bytes()
    info = {"path": str(path), "sha256": _sha256(data), **summarize_entries(parse_metadata(data, repr(str(path))))}
    side = sidecar_path(Path(path))
    info["sidecar"], info["sources"] = "absent", None
    if side.is_file():
        meta = json.loads(side.read_text(encoding="utf-8"))
        if meta.get("sha256") == info["sha256"]:
            info["sidecar"], info["sources"] = "ok", meta.get("sources")
            info["versions"] = meta.get("versions")
        else:
            info["sidecar"] = "stale"
    return info
