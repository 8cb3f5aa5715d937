"""Linear probe: scikit-learn logistic regression on frozen, L2-normalised image embeddings. No torch, no I/O.

The CLIP paper's protocol (L-BFGS logistic regression, inverse regularisation C chosen on a validation split),
with a coarser grid: each C of `c_grid` is fit on the train part and scored (top-1) on the validation part, the
best C (the smallest among equals) is refit on train + validation, then scored on the test split. Features are
standardised with the fitting set's mean and std first (a linear map, so the same hypothesis class): normalised
CLIP features of an untrained or weak model are nearly collinear, and L-BFGS otherwise crawls. Keys:
`lp_acc1`, `lp_acc5`, `lp_mean_per_class_recall` (CLIP_benchmark's linear-probe names) and `C` (the chosen C).
CLIP_benchmark's own probe (a torch linear layer with an AdamW weight-decay sweep, CUDA only) differs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from evaluation.datasets import fixed_split
from evaluation.errors import EvaluationError
from evaluation.zeroshot import classification_metrics

DEFAULT_C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
"""10^-3 .. 10^3 in decade steps."""


def _model(c: float, max_iter: int, warm_start: bool = False):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, warm_start=warm_start))


def _fit(model, x: np.ndarray, y: np.ndarray):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The number of unique classes")  # few samples per class is fine
        return model.fit(x, y)


def probe_logits(clf, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Decision scores [N, n_classes]; classes the classifier never saw get -inf (they can never be predicted)."""
    scores = clf.decision_function(x)
    if scores.ndim == 1:  # binary: sklearn returns the score of classes_[1] only
        scores = np.stack([-scores, scores], axis=1)
    out = np.full((len(x), n_classes), -np.inf)
    out[:, clf.classes_.astype(np.int64)] = scores
    return out


def choose_c(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    c_grid: Sequence[float],
    max_iter: int,
) -> float:
    """The C of `c_grid` with the best validation top-1 accuracy; the smallest such C on ties."""
    best_c, best_acc = float(c_grid[0]), -1.0
    model = _model(best_c, max_iter, warm_start=True)  # ascending C, each fit starts from the previous solution
    for c in sorted(c_grid):
        model.set_params(logisticregression__C=c)
        acc = float((_fit(model, train_x, train_y).predict(val_x) == val_y).mean())
        if acc > best_acc:
            best_c, best_acc = float(c), acc
    return best_c


def linear_probe_metrics(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    n_classes: int,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    max_iter: int = 1000,
) -> dict[str, float]:
    """Choose C on a fixed validation split of the train features (20 % of each class, `fixed_split`), refit on
    all train features, report `lp_acc1`, `lp_acc5` (NaN below 5 classes), `lp_mean_per_class_recall` and `C`."""
    train_y = np.asarray(train_y, dtype=np.int64)
    if len(np.unique(train_y)) < 2:
        raise EvaluationError(f"linear probe needs at least 2 classes in the train split, got {np.unique(train_y)}.")
    val = fixed_split(train_y, every=5, take=1)
    if len(np.unique(train_y[~val])) < 2 or not val.any() or len(c_grid) == 1:
        c = float(c_grid[0])
    else:
        c = choose_c(train_x[~val], train_y[~val], train_x[val], train_y[val], c_grid, max_iter)
    clf = _fit(_model(c, max_iter), train_x, train_y)
    metrics = classification_metrics(probe_logits(clf, test_x, n_classes), test_y)
    out = {f"lp_{k}": v for k, v in metrics.items()}
    out["C"] = c
    return out
