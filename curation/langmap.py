"""fastText lid.176 labels → worldwide metadata languages: which `{lang}.json` list a caption is matched against.
Pure: no Ray, no I/O.

Meta CLIP 2 maps LID codes to Wikipedia codes with a `lid_to_wiki` table it ships empty ("customize your LID lang
set"), merging variants into one list and sending the rest to `other`. This is our table: every lid.176 label maps
to itself — metadata languages are named as lid.176 and wordfreq name them (ISO 639-1 where one exists) — except the
`MERGED` variants, which have no word list of their own among the offline sources (wordfreq) and share their
parent's. A label's own list wins when the metadata has one (an `sr.json` next to `sh.json` serves Serbian). A caption
whose language has no list is rejected as `no_metadata_language` (there is no `other` list: Meta CLIP 2's `other`
mixes scripts whose entries never match each other).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

import pyarrow as pa

from curation.text import TextBatch, as_pylist

# `model.get_labels()` of lid.176.ftz without the "__label__" prefix, sorted (176 labels).
LID176_LABELS = tuple(
    """af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy
    da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id
    ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr
    mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah
    sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo wa war wuu
    xal xmf yi yo yue zh""".split()
)
MERGED = {
    "yue": "zh",  # Cantonese (Meta CLIP 2 merges zh_yue into zh)
    "wuu": "zh",  # Wu Chinese
    "arz": "ar",  # Egyptian Arabic
    "no": "nb",  # lid.176's Norwegian is Bokmål; wordfreq names it nb
    "tl": "fil",  # Tagalog: wordfreq's Filipino list
    "hr": "sh",  # Croatian, Bosnian, Serbian: wordfreq's Serbo-Croatian list (Latin script)
    "bs": "sh",
    "sr": "sh",
}
LID_TO_METADATA: dict[str, str] = {label: MERGED.get(label, label) for label in LID176_LABELS}


class LangMapReject(StrEnum):
    """Why a caption has no metadata list to be matched against."""

    NO_METADATA_LANGUAGE = "no_metadata_language"  # its LID language has no list (detail: the label)


def metadata_language(label: str | None, available: Collection[str]) -> str | None:
    """The metadata language for LID `label`: the label itself when `available` has it, else its `MERGED` parent
    when available, else None (also for a null label). Labels outside lid.176 (another model) map to themselves."""
    if label is None:
        return None
    if label in available:
        return label
    parent = LID_TO_METADATA.get(label, label)
    return parent if parent in available else None


def metadata_languages(
    labels: TextBatch, available: Collection[str]
) -> tuple[pa.StringArray, pa.StringArray, pa.StringArray]:
    """Per row: (metadata language or null, reason `no_metadata_language` or null, detail naming the label)."""
    langs, reasons, details = [], [], []
    for label in as_pylist(labels):
        lang = metadata_language(label, available)
        langs.append(lang)
        reasons.append(None if lang is not None else LangMapReject.NO_METADATA_LANGUAGE.value)
        details.append(None if lang is not None else f"language {label!r} has no metadata list")
    return pa.array(langs, pa.string()), pa.array(reasons, pa.string()), pa.array(details, pa.string())
