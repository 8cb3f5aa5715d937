"""Linear probe: C chosen on the validation split, metrics from the refit, edge cases of the class set."""

import math

import numpy as np
import pytest

from evaluation.errors import EvaluationError
from evaluation.linear_probe import choose_c, linear_probe_metrics, probe_logits
from evaluation.zeroshot import normalize


def blobs(n_per_class, n_classes, noise, seed, test_per_class=0):
    """Normalised Gaussian blobs around random centres: (x, y), plus (x_test, y_test) when asked."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, 16))

    def draw(n):
        y = np.repeat(np.arange(n_classes), n)
        return normalize(centres[y] + noise * rng.normal(size=(len(y), 16))), y

    return draw(n_per_class) + (draw(test_per_class) if test_per_class else ())


def test_separable_features_are_probed_perfectly():
    x, y, xt, yt = blobs(30, 6, 0.05, 0, test_per_class=10)
    m = linear_probe_metrics(x, y, xt, yt, n_classes=6, c_grid=[0.1, 1.0])
    assert m["lp_acc1"] == 1.0 and m["lp_acc5"] == 1.0 and m["lp_mean_per_class_recall"] == 1.0
    assert m["C"] in (0.1, 1.0)


def test_noisy_features_are_better_than_chance_but_not_perfect():
    x, y, xt, yt = blobs(40, 5, 1.0, 1, test_per_class=40)
    m = linear_probe_metrics(x, y, xt, yt, n_classes=5, c_grid=[0.01, 1.0, 100.0])
    assert 0.3 < m["lp_acc1"] < 1.0


def test_choose_c_prefers_the_smallest_among_equals():
    x, y = blobs(20, 3, 0.01, 3)
    assert choose_c(x, y, x, y, [10.0, 1.0, 100.0], 200) == 1.0


def test_binary_and_unseen_classes_in_logits():
    x, y = blobs(20, 2, 0.1, 4)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(x, y + 1)  # classes 1 and 2 of 4
    logits = probe_logits(clf, x, n_classes=4)
    assert logits.shape == (40, 4) and np.isneginf(logits[:, [0, 3]]).all()
    assert (logits.argmax(1) == y + 1).mean() > 0.9


def test_fewer_than_five_classes_gives_nan_acc5_and_one_class_is_an_error():
    x, y = blobs(20, 3, 0.1, 5)
    assert math.isnan(linear_probe_metrics(x, y, x, y, n_classes=3, c_grid=[1.0])["lp_acc5"])
    with pytest.raises(EvaluationError, match="at least 2 classes"):
        linear_probe_metrics(x, np.zeros(len(x), dtype=int), x, y, n_classes=3)
