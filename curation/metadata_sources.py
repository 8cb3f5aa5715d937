"""The candidate lists a metadata build draws from (WordNet, wordfreq, PMI bigrams, titles, numbers). No Ray.

Each function reads local files given by explicit paths (or wordfreq's bundled lists) and returns candidates in
a deterministic ranked order; `curation.metadata` merges them in MetaCLIP's order. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

WORDNET_DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
# A word: letters with inner apostrophes or hyphens ("don't", "t-shirt"); no digits, no underscores.
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
# Anything but word characters, spaces, apostrophes and hyphens ends a phrase: bigrams never span it.
_PHRASE_BREAK = re.compile(r"[^\w\s'’-]+")
# NLTK strips an adjective's syntactic marker from the lemma: "(.*?)(\(.*\))?$" ("galore(ip)" -> "galore").
_SYNTACTIC_MARKER = re.compile(r"\([a-z]+\)$")


def numbers() -> list[str]:
    """MetaCLIP's seed entries: `set([str(ix) for ix in range(100)])`, here in numeric order."""
    return [str(i) for i in range(100)]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def wordnet_head_lemmas(wordnet_dir: Path) -> list[str]:
    """MetaCLIP's WordNet source from the WordNet 3.0 dict files (`data.noun`, ... as in Debian's
    `wordnet-base`): `name = ss.name(); name[:name.find('.')].replace('_', ' ')` for every synset, where NLTK's
    `ss.name()` starts with the synset's first lemma, marker-stripped and lower-cased. Unique, sorted by code
    point (the source has no ranking)."""
    heads: set[str] = set()
    for fname in WORDNET_DATA_FILES:
        path = Path(wordnet_dir) / fname
        if not path.is_file():
            raise FileNotFoundError(f"WordNet data file {str(path)!r} not found (Debian package wordnet-base)")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # the license header
                    continue
                first_lemma = _SYNTACTIC_MARKER.sub("", line.split(" ", 5)[4]).lower()
                heads.add(first_lemma.split(".", 1)[0].replace("_", " "))
    heads.discard("")
    return sorted(heads)


def wordfreq_unigrams(min_zipf: float, lang: str = "en", wordlist: str = "large") -> list[str]:
    """Words of wordfreq's bundled list with Zipf frequency >= `min_zipf`, most frequent first (wordfreq's own
    order within a frequency bin). Dropped: tokens with a digit (wordfreq folds every digit to "0", so they are
    not real strings) and tokens without a letter (emoji, symbols)."""
    import wordfreq

    out: list[str] = []
    # get_frequency_list()[i] holds the words of frequency 10^(-i/100), i.e. Zipf = 9 - i/100.
    for i, words in enumerate(wordfreq.get_frequency_list(lang, wordlist)):
        if 9 - i / 100 < min_zipf:
            break
        out.extend(w for w in words if not any(c.isdigit() for c in w) and any(c.isalpha() for c in w))
    return out


def read_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 text file (`.gz` allowed)."""
    with _open_text(Path(path)) as f:
        yield from f


def wordnet_glosses(wordnet_dir: Path) -> Iterator[str]:
    """The gloss and example sentences of every synset in the WordNet 3.0 data files (~1.5M words of
    English): an offline corpus for PMI bigrams when no Wikipedia-scale corpus is at hand."""
    for fname in WORDNET_DATA_FILES:
        path = Path(wordnet_dir) / fname
        if not path.is_file():
            raise FileNotFoundError(f"WordNet data file {str(path)!r} not found (Debian package wordnet-base)")
        with open(path, encoding="utf-8") as f:
            for line in f:
                _, bar, gloss = line.partition(" | ")
                if bar and not line.startswith("  "):
                    yield gloss


def count_ngrams(lines: Iterable[str], lowercase: bool) -> tuple[Counter, Counter]:
    """(unigram counts, adjacent-bigram counts) over lines of text. Words are `_WORD` tokens of
    `str.split()`; a non-word token or any punctuation other than ' and - breaks the bigram chain."""
    uni: Counter = Counter()
    bi: Counter = Counter()
    for line in lines:
        for phrase in _PHRASE_BREAK.split(line.lower() if lowercase else line):
            prev = None
            for tok in phrase.split():
                if _WORD.fullmatch(tok) is None:
                    prev = None
                    continue
                uni[tok] += 1
                if prev is not None:
                    bi[prev, tok] += 1
                prev = tok
    return uni, bi


def pmi_bigrams(
    lines: Iterable[str], min_count: int, min_pmi: float, lowercase: bool = True
) -> list[tuple[str, float]]:
    """("w1 w2", PMI) for bigrams of `lines` seen >= `min_count` times with PMI >= `min_pmi`, best first.

    PMI is NLTK's `BigramAssocMeasures.pmi` as MetaCLIP used it: log2(n_ii * N / (n_i * n_j)), N = number of
    word tokens. Ranked by the ratio n_ii * N / (n_i * n_j) — a correctly rounded division of exact integers,
    so the order is the same on every platform — then by count, then alphabetically."""
    uni, bi = count_ngrams(lines, lowercase)
    n = sum(uni.values())
    scored = []
    for (w1, w2), c in bi.items():
        if c >= min_count:
            ratio = (c * n) / (uni[w1] * uni[w2])
            if math.log2(ratio) >= min_pmi:
                scored.append((-ratio, -c, f"{w1} {w2}"))
    scored.sort()
    return [(b, math.log2(-r)) for r, _, b in scored]


def read_titles(path: Path, min_count: int) -> list[str]:
    """Titles from a text file, one per line: `title` or `title<TAB>count` (e.g. summed Wikipedia pageviews).
    As MetaCLIP: `title.strip().replace("_", " ")`, titles with ":" skipped, `count >= min_count` kept (lines
    without a count are kept). Ordered by count, highest first, then file order; duplicates keep the first."""
    rows: list[tuple[int, int, str]] = []
    for lineno, line in enumerate(read_lines(path)):
        title, _, count = line.rstrip("\n").partition("\t")
        title = title.strip().replace("_", " ")
        if not title or ":" in title:
            continue
        try:
            n = int(count) if count.strip() else None
        except ValueError:
            raise ValueError(f"{str(path)!r} line {lineno + 1}: count {count.strip()!r} is not an integer") from None
        if n is None or n >= min_count:
            rows.append((-(n or 0), lineno, title))
    rows.sort()
    return list(dict.fromkeys(t for _, _, t in rows))
