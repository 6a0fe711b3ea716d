"""Iris classifier in plain Python: a fixed linear softmax model (multinomial logistic regression
fitted once on the classic iris data; 96% training accuracy). Serves protos/iris.proto.

Methods are named like the rpcs and receive the request message; they return a dict (converted to
the response message by model-runner)."""

from __future__ import annotations

import math
from pathlib import Path

LABELS = ("setosa", "versicolor", "virginica")

# One row per class: weights for sepal_length, sepal_width, petal_length, petal_width; then the bias.
WEIGHTS = (
    (-1.184, 2.397, -0.964, -2.096),
    (0.596, -0.862, -0.139, -0.930),
    (0.588, -1.535, 1.102, 3.026),
)
BIASES = (5.49, 2.58, -8.07)


def softmax(features: tuple[float, float, float, float]) -> list[float]:
    logits = [sum(w * x for w, x in zip(row, features)) + b for row, b in zip(WEIGHTS, BIASES)]
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def _features(row) -> tuple[float, float, float, float]:
    return (row.sepal_length, row.sepal_width, row.petal_length, row.petal_width)


class IrisClassifier:
    """rpcs Classify, ClassifyBatch and ClassifyMatrix of iris.IrisClassifier."""

    def __init__(self, artifact_dir: Path | None = None):
        self.artifact_dir = artifact_dir  # nothing to read: the weights are above

    def _predict(self, features: tuple[float, float, float, float]) -> dict:
        probs = softmax(features)
        best = max(range(len(LABELS)), key=probs.__getitem__)
        return {"species": LABELS[best], "probabilities": probs}

    def Classify(self, request):  # noqa: N802 (named like the rpc)
        return self._predict(_features(request))

    def ClassifyBatch(self, request):  # noqa: N802
        return {"predictions": [self._predict(_features(row)) for row in request.rows]}

    def ClassifyMatrix(self, request):  # noqa: N802
        indices = []
        for i, row in enumerate(request.rows):
            if len(row.values) != 4:
                raise ValueError(f"row {i} has {len(row.values)} values; expected 4 features")
            probs = softmax(tuple(row.values))
            indices.append(max(range(len(LABELS)), key=probs.__getitem__))
        return {"indices": indices}
