"""The shipped lid.176 → metadata-language table: complete for the model's labels, merges only into offline lists."""

import fasttext
import pytest
import wordfreq

from curation.langid import bundled_model_path
from curation.langmap import (
    LID176_LABELS,
    LID_TO_METADATA,
    MERGED,
    LangMapReject,
    metadata_language,
    metadata_languages,
)


def test_table_covers_exactly_the_bundled_model_labels():
    labels = sorted(label.removeprefix("__label__") for label in fasttext.load_model(str(bundled_model_path())).labels)
    assert list(LID176_LABELS) == labels and len(labels) == 176
    assert set(LID_TO_METADATA) == set(labels)


def test_merges_go_to_languages_with_an_offline_word_list():
    offline = set(wordfreq.available_languages("best"))
    for label, parent in MERGED.items():
        assert parent in offline and label not in offline, (label, parent)
    assert {label: LID_TO_METADATA[label] for label in ("en", "de", "zh", "yue", "no", "tl", "sr", "th")} == {
        "en": "en",
        "de": "de",
        "zh": "zh",
        "yue": "zh",
        "no": "nb",
        "tl": "fil",
        "sr": "sh",
        "th": "th",
    }


@pytest.mark.parametrize(
    "label,available,expected",
    [
        ("de", {"en", "de"}, "de"),
        ("yue", {"zh"}, "zh"),
        ("sr", {"sr", "sh"}, "sr"),  # the label's own list wins over the merge
        ("sr", {"sh"}, "sh"),
        ("fr", {"en", "de"}, None),
        ("xx", {"xx"}, "xx"),  # a label outside lid.176 maps to itself
        (None, {"en"}, None),
    ],
)
def test_metadata_language(label, available, expected):
    assert metadata_language(label, available) == expected


def test_batch_rejects_name_the_label():
    langs, reasons, details = metadata_languages(["en", "fr", None, "wuu"], {"en", "zh"})
    assert langs.to_pylist() == ["en", None, None, "zh"]
    assert reasons.to_pylist() == [None, LangMapReject.NO_METADATA_LANGUAGE, LangMapReject.NO_METADATA_LANGUAGE, None]
    assert details.to_pylist() == [
        None,
        "language 'fr' has no metadata list",
        "language None has no metadata list",
        None,
    ]
    assert LangMapReject.NO_METADATA_LANGUAGE == "no_metadata_language"
