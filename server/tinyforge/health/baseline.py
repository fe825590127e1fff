"""Baselines: is the network better than guessing, and than a quick classical model?

On the same split the network was trained and tested on (artifacts/splits.npz): the majority
class of the training split, logistic regression and k-nearest neighbours (scikit-learn, on
standardised, flattened inputs). A network that is not clearly better than the majority class
is called chance-level (an error: the data does not predict the label, or the training set-up
is at fault when the classical model does clearly better); a classical model that beats a
working network by a margin says the training set-up is what to fix.

"Clearly better" is a one-sided binomial test: the network's correct test answers against the
majority class's rate, at 1% — with 52 test samples and 4 balanced classes, 42% is needed.
scikit-learn is imported inside `run_baseline` only (the language server imports this package).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinyforge.health import Finding, pct

ALPHA = 0.01
# A classical model must beat the network by at least this much (and by two standard errors
# of the network's test accuracy) before the training set-up is blamed.
BEATEN_MARGIN = 0.05
# Bounds that keep the classical models to a second or two on large datasets.
MAX_TRAIN_ROWS = 5000
MAX_LOGREG_FEATURES = 2048
BALANCED_RATIO = 1.5


@dataclass
class Baseline:
    test_samples: int
    classes: int
    majority_class: str
    majority_accuracy: float  # predicting the training split's most frequent class on test
    balanced: bool  # the training split's classes are about equally large
    classical: dict[str, float] = field(default_factory=dict)  # model name → test accuracy
    seconds: float = 0.0

    @property
    def best(self) -> tuple[str, float] | None:
        if not self.classical:
            return None
        name = max(self.classical, key=lambda k: self.classical[k])
        return name, self.classical[name]

    def chance_words(self) -> str:
        if self.balanced:
            return f"chance {pct(self.majority_accuracy)} for {self.classes} balanced classes"
        share = pct(self.majority_accuracy)
        return f"the majority class '{self.majority_class}' alone scores {share}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        best = self.best
        data["best_classical"] = {"model": best[0], "accuracy": best[1]} if best else None
        return data


def run_baseline(splits: dict[str, np.ndarray], classes: list[str]) -> Baseline:
    """Majority class and classical models trained on x_train, scored on x_test."""
    started = time.monotonic()
    x_train = splits["x_train"].reshape(len(splits["x_train"]), -1).astype(np.float64)
    x_test = splits["x_test"].reshape(len(splits["x_test"]), -1).astype(np.float64)
    y_train, y_test = splits["y_train"].astype(int), splits["y_test"].astype(int)
    counts = np.bincount(y_train, minlength=len(classes))
    majority = int(np.argmax(counts))
    present = counts[counts > 0]
    base = Baseline(
        test_samples=len(y_test),
        classes=len(classes),
        majority_class=classes[majority] if majority < len(classes) else str(majority),
        majority_accuracy=float(np.mean(y_test == majority)) if len(y_test) else 0.0,
        balanced=bool(present.max() / present.min() <= BALANCED_RATIO) if len(present) else True,
    )
    if len(present) < 2 or not len(y_test):
        return base
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(x_train) > MAX_TRAIN_ROWS:
        pick = np.random.default_rng(0).permutation(len(x_train))[:MAX_TRAIN_ROWS]
        x_train, y_train = x_train[pick], y_train[pick]
    models: dict[str, Any] = {
        "k-nearest neighbours": make_pipeline(
            StandardScaler(), KNeighborsClassifier(n_neighbors=min(5, len(x_train)))
        )
    }
    if x_train.shape[1] <= MAX_LOGREG_FEATURES:
        models["logistic regression"] = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=500)
        )
    from threadpoolctl import threadpool_limits

    # One BLAS thread: on small problems a thread pool costs far more than it saves (digits'
    # logistic regression: 2.6 s with the default pool on 2 busy cores, 0.04 s with one).
    with warnings.catch_warnings(), threadpool_limits(1):
        # A baseline that has not fully converged is still a baseline.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, model in models.items():
            model.fit(x_train, y_train)
            base.classical[name] = float(model.score(x_test, y_test))
    base.seconds = round(time.monotonic() - started, 3)
    return base


def binomial_p_value(correct: int, n: int, p0: float) -> float:
    """P(X >= correct) for X ~ Binomial(n, p0): how likely guessing does at least this well."""
    if correct <= 0:
        return 1.0
    if p0 <= 0:
        return 0.0
    if p0 >= 1:
        return 1.0
    total = 0.0
    for k in range(correct, n + 1):
        total += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p0)
            + (n - k) * math.log1p(-p0)
        )
    return min(1.0, total)


def at_chance(accuracy: float, base: Baseline) -> bool:
    """Whether `accuracy` on the test split is not clearly better than the majority class."""
    n = base.test_samples
    if n == 0:
        return False
    correct = round(accuracy * n)
    return binomial_p_value(correct, n, base.majority_accuracy) > ALPHA


def judge(
    base: Baseline,
    *,
    network_accuracy: float,
    int8_accuracy: float | None = None,
    scales_inputs: bool | None = None,
    tabular: bool = False,
    epochs_run: int | None = None,
    epochs: int | None = None,
) -> list[Finding]:
    """Findings on the network's (float) test accuracy against the baselines."""
    if base.test_samples == 0:
        return []
    best = base.best
    tips = _tips(scales_inputs=scales_inputs, tabular=tabular, epochs_run=epochs_run, epochs=epochs)
    if at_chance(network_accuracy, base):
        head = f"The network's test accuracy {pct(network_accuracy)} ≈ {base.chance_words()}"
        if best is None or at_chance(best[1], base):
            others = " and ".join(f"{k} ({pct(v)})" for k, v in base.classical.items())
            return [
                Finding(
                    "error",
                    "baseline.chance",
                    f"{head}, and {others or 'no classical model'} do no better: the data does "
                    "not predict the label.",
                    "Check that each label belongs to its row or image (a shuffled or shifted "
                    "label column looks exactly like this) and that the inputs can tell the "
                    "classes apart; no model will learn this data as it is.",
                    where="dataset",
                )
            ]
        return [
            Finding(
                "error",
                "baseline.chance",
                f"{head}, while {best[0]} reaches {pct(best[1])} on the same split: the training "
                "set-up is at fault, not the data.",
                f"Try {tips}.",
                where="train.py",
            )
        ]
    found: list[Finding] = []
    if int8_accuracy is not None and at_chance(int8_accuracy, base):
        found.append(
            Finding(
                "error",
                "quant.int8-chance",
                f"The int8 model's test accuracy {pct(int8_accuracy)} ≈ {base.chance_words()}, "
                f"though the float network reaches {pct(network_accuracy)}: quantization broke "
                "it.",
                "Calibrate on more, and more varied, representative samples; float32 is the "
                "fallback if it fits.",
                where="int8 model",
            )
        )
    if best is None:
        return found
    name, accuracy = best
    n = base.test_samples
    margin = max(BEATEN_MARGIN, 2 * math.sqrt(network_accuracy * (1 - network_accuracy) / n))
    if accuracy - network_accuracy >= margin:
        found.append(
            Finding(
                "warning",
                "baseline.beaten",
                f"{name[0].upper() + name[1:]} reaches {pct(accuracy)} on the same split, the "
                f"network {pct(network_accuracy)}: the training set-up holds the network back.",
                f"Try {tips}.",
                where="train.py",
            )
        )
    return found


def _tips(
    *, scales_inputs: bool | None, tabular: bool, epochs_run: int | None, epochs: int | None
) -> str:
    tips = []
    if tabular and scales_inputs is False:
        tips.append(
            "standardising the features (a keras.layers.Normalization layer first in the model)"
        )
    if epochs and epochs_run is not None and epochs_run >= epochs:
        tips.append(
            f"more epochs (training stopped at the limit of {epochs}: raise [training] epochs "
            "in tinyforge.toml)"
        )
    tips.append("a different input shape or a larger model")
    tips.append("a lower learning rate")
    return ", ".join(tips[:-1]) + " or " + tips[-1]
