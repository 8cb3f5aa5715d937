"""Which captions `ftfy.fix_text` provably leaves unchanged, decided without running it (it costs ~45 µs a caption).

Most non-ASCII alt-text — accented Latin, Cyrillic, Greek, CJK, Hangul, Arabic — is already clean, and ftfy returns
it as it came. `identity_pattern()` is a regex whose full match, together with `unicodedata.is_normalized("NFC")`,
proves that, by covering each step of ftfy's `fix_and_explain` loop (ftfy 6.3, default config):

1. The character-level fixers (`unescape_html`, `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width`,
   `uncurl_quotes`, `fix_line_breaks`, `fix_surrogates`, `remove_terminal_escapes`, `remove_control_chars`) each
   replace single characters (or `&` entities, `\\x1b` sequences, `\\r\\n`) and leave every other character alone.
   The allowed set holds only characters that every one of them maps to itself, checked here by calling ftfy's
   own functions on each candidate character (printable ASCII without `&`; the common letter blocks).
2. `fix_encoding` returns the text unchanged unless `ftfy.badness.is_bad(text)`, i.e. unless `BADNESS_RE` matches.
   Every alternative of `BADNESS_RE` is a sequence that contains at least one element drawn from a fixed set of
   non-ASCII characters (read from the parsed regex itself, not copied); one such set is chosen per alternative
   (the one least made of letters), and their union is removed from the allowed set. So no alternative can match
   a text made of allowed characters. If the regex ever has an alternative without such an element, there is
   no fast path (`identity_pattern()` returns None) rather than a wrong one.
3. NFC normalisation: checked exactly at run time with `unicodedata.is_normalized`.
When every step is the identity, `fix_and_explain` stops after one pass and `fix_text` joins its unchanged
segments, so the caption is returned as is. `tests/unit/curation/test_ftfy_identity.py` compares with ftfy.

Written by hand because ftfy has no "would anything change?" query; its own `is_bad` alone costs ~15 µs.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Printable ASCII except "&" (HTML entities) plus \t \n \x0c \r: ftfy keeps them or turns them into "\n", and the
# caption normaliser collapses whitespace afterwards. Non-ASCII candidates: the letter blocks of most alt-text.
_ASCII = [chr(c) for c in (0x09, 0x0A, 0x0C, 0x0D, *range(0x20, 0x26), *range(0x27, 0x7F))]
_BLOCKS = [
    (0x00A0, 0x024F),  # Latin-1 Supplement, Latin Extended-A/B
    (0x0370, 0x052F),  # Greek, Cyrillic (+ Supplement)
    (0x0590, 0x06FF),  # Hebrew, Arabic
    (0x0900, 0x097F),  # Devanagari
    (0x0E00, 0x0E7F),  # Thai
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
    (0x2010, 0x2027),  # dashes, bullets, ellipsis (quotes among them are filtered out below)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
]


def _char_fixers() -> list:
    from ftfy import fixes

    return [
        fixes.unescape_html,
        fixes.fix_c1_controls,
        fixes.fix_latin_ligatures,
        fixes.fix_character_width,
        fixes.uncurl_quotes,
        fixes.fix_line_breaks,
        fixes.fix_surrogates,
        fixes.remove_terminal_escapes,
        fixes.remove_control_chars,
    ]


def _unchanged_by_fixers(chars: list[str]) -> set[str]:
    """The characters that every character-level fixer maps to themselves. Whole blocks are tried at once (joined
    by spaces, which no fixer touches); a block that changes is split until single characters are decided."""
    fixers = _char_fixers()
    keep: set[str] = set()

    def visit(part: list[str]) -> None:
        joined = " ".join(part)
        if all(f(joined) == joined for f in fixers):
            keep.update(part)
        elif len(part) > 1:
            visit(part[: len(part) // 2])
            visit(part[len(part) // 2 :])

    visit(chars)
    return keep


def _badness_sets() -> set[str] | None:
    """One character set per alternative of ftfy's BADNESS_RE that every match of it must draw a character from;
    their union. None if some alternative has no such element (then no fast path is sound)."""
    import re._constants as sre
    import re._parser as parser

    from ftfy.badness import BADNESS_RE

    if BADNESS_RE.flags & re.IGNORECASE:
        return None
    tree = parser.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
    if len(tree.data) != 1 or tree.data[0][0] != sre.BRANCH:
        return None
    union: set[str] = set()
    for branch in tree.data[0][1][1]:
        options = []
        for op, av in branch.data:  # only elements that occur exactly once in every match count
            chars = _positive_chars(op, av, sre)
            if chars and all(ord(c) > 0x7F for c in chars):
                options.append(chars)
        if not options:
            return None
        union |= min(options, key=_letteriness)
    return union


def _positive_chars(op, av, sre) -> set[str] | None:
    """The characters a LITERAL or a non-negated class (literals and ranges only) can match, else None."""
    if op == sre.LITERAL:
        return {chr(av)}
    if op != sre.IN:
        return None
    out: set[str] = set()
    for item_op, item in av:
        if item_op == sre.LITERAL:
            out.add(chr(item))
        elif item_op == sre.RANGE:
            out.update(chr(c) for c in range(item[0], item[1] + 1))
        else:  # NEGATE, CATEGORY (\w, \s, ...): could match characters not listed
            return None
    return out


def _letteriness(chars: set[str]) -> tuple[int, int]:
    """How much clean text a set would send to the slow path: its commonest member first (lower-case letters of
    the common alphabets, Greek and Russian capitals and the no-break space weigh most, other letters less, symbols
    least), then the total."""
    weights = [_weight(c) for c in chars]
    return max(weights), sum(weights)


def _weight(c: str) -> int:
    o, cat = ord(c), unicodedata.category(c)
    common_lower = cat == "Ll" and (0xDF <= o <= 0x17F or 0x3AC <= o <= 0x3CE or 0x430 <= o <= 0x45F)
    common_upper = cat == "Lu" and (0x391 <= o <= 0x3A9 or 0x410 <= o <= 0x42F)  # Greek, Russian capitals
    if common_lower or common_upper or c == "\xa0":  # and the no-break space
        return 10
    return 3 if cat.startswith("L") else 1


def _char_class(chars: set[str]) -> str:
    points = sorted(ord(c) for c in chars)
    parts, i = [], 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        lo, hi = re.escape(chr(points[i])), re.escape(chr(points[j]))
        parts.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "[" + "".join(parts) + "]"


@functools.cache
def identity_pattern() -> re.Pattern | None:
    """A compiled regex: `fullmatch(text)` and `unicodedata.is_normalized("NFC", text)` ⇒ `ftfy.fix_text(text)`
    equals `text` up to whitespace. None when ftfy's badness regex has a shape this proof does not cover."""
    bad = _badness_sets()
    if bad is None:
        return None
    candidates = _ASCII + [chr(c) for lo, hi in _BLOCKS for c in range(lo, hi + 1)]
    allowed = _unchanged_by_fixers([c for c in candidates if c not in bad])
    return re.compile(_char_class(allowed) + "*")


def unchanged_by_ftfy(text: str) -> bool:
    """True only if `ftfy.fix_text(text)` is `text` up to whitespace (proof in the module docstring)."""
    pattern = identity_pattern()
    return pattern is not None and pattern.fullmatch(text) is not None and unicodedata.is_normalized("NFC", text)
