"""Meta CLIP 2's "CJK or similar" character class: the characters at which a worldwide metadata entry gets no space
pad (`get_spaced_metadata` in MetaCLIP's `metaclip/curation/substr_matching.py`). Pure: no Ray, no I/O.

The class is exactly Meta CLIP 2's `is_cjk_or_similar`: CJK ideographs (Unified, Extensions A–F, Compatibility,
Radicals Supplement, Kangxi Radicals, Ideographic Description Characters), Thai, Lao, Burmese, Khmer, Tibetan, ASCII
punctuation (`string.punctuation`) and 25 CJK/full-width punctuation marks. Note what it leaves out, as Meta CLIP 2
does: kana (U+3040–30FF), Hangul and the ideographic space/full stop block U+3000–303F apart from the marks listed
— an entry starting or ending with one of those is padded like a Latin word.
"""

from __future__ import annotations

import re
import string

import numpy as np

# Meta CLIP 2 `additional_punctuation`, in its order.
CJK_PUNCTUATION = (
    "，",
    "。",
    "、",
    "；",
    "：",
    "？",
    "！",
    "“",
    "”",
    "‘",
    "’",
    "（",
    "）",
    "【",
    "】",
    "《",
    "》",
    "〈",
    "〉",
    "「",
    "」",
    "『",
    "』",
    "～",
    "—",
)
# Meta CLIP 2 `is_cjk_or_similar`, as inclusive code point ranges (CJK first, then Thai/Lao/Burmese/Khmer/Tibetan).
NO_SPACE_RANGES = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B820, 0x2CEAF),  # Extension E
    (0x2CEB0, 0x2EBEF),  # Extension F
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x2E80, 0x2EFF),  # Radicals Supplement
    (0x2F00, 0x2FDF),  # Kangxi Radicals
    (0x2FF0, 0x2FFF),  # Ideographic Description Characters
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Burmese
    (0x1780, 0x17FF),  # Khmer
    (0x0F00, 0x0FFF),  # Tibetan
)
_PUNCTUATION = frozenset(string.punctuation) | frozenset(CJK_PUNCTUATION)
_TABLE_SIZE = 0x110000  # every code point (UTF-32 code units, lone surrogates included, are below it)
# The class as one regex character class (C speed for whole strings); re.escape keeps "-", "]", "\\" literal.
NO_SPACE_CHARS = re.compile(
    "["
    + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in NO_SPACE_RANGES)
    + "".join(re.escape(c) for c in sorted(_PUNCTUATION))
    + "]"
)


def is_punctuation(char: str) -> bool:
    """Meta CLIP 2: `char in string.punctuation or char in additional_punctuation`."""
    return char in _PUNCTUATION


def is_no_space_char(char: str) -> bool:
    """Meta CLIP 2's `is_cjk_or_similar(char)`: CJK, Thai, Lao, Burmese, Khmer, Tibetan or punctuation."""
    return NO_SPACE_CHARS.fullmatch(char) is not None


def no_space_table() -> np.ndarray:
    """`bool[0x110000]`: `is_no_space_char(chr(c))` for every code point c; index it with UTF-32 code units."""
    table = np.zeros(_TABLE_SIZE, dtype=bool)
    for lo, hi in NO_SPACE_RANGES:
        table[lo : hi + 1] = True
    table[[ord(c) for c in _PUNCTUATION]] = True
    return table


def no_space_mask(units: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`bool[len(units)]`: which UTF-32 code units are in the class, given `table = no_space_table()`."""
    return table[units]


def spaced_entry_metaclip2(entry: str) -> str:
    """Meta CLIP 2 `get_spaced_metadata` for one non-empty entry: a leading space unless its first character is in
    the class, a trailing space unless its last one is."""
    lead = "" if is_no_space_char(entry[0]) else " "
    trail = "" if is_no_space_char(entry[-1]) else " "
    return f"{lead}{entry}{trail}"
