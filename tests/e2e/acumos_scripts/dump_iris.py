"""The iris classifier of the Acumos Python client's tutorial, dumped with the real client.

Run under the Python of tests/e2e/acumos_dumps.py's environment (acumos 1.0.1, scikit-learn):
``python dump_iris.py OUT_DIR`` writes OUT_DIR/iris-acumos (metadata.json, model.proto, model.zip).
"""

import sys

import numpy as np
from acumos.modeling import List, Model, create_namedtuple
from acumos.session import AcumosSession
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

iris = load_iris()
X = iris.data
y = iris.target

clf = RandomForestClassifier(random_state=0)
clf.fit(X, y)

# The tutorial makes this type from a pandas DataFrame of the four columns (create_dataframe): a
# NamedTuple of one list per column, which create_namedtuple spells without pandas.
IrisDataFrame = create_namedtuple(
    "IrisDataFrame",
    [
        ("sepal_length", List[float]),
        ("sepal_width", List[float]),
        ("petal_length", List[float]),
        ("petal_width", List[float]),
    ],
)


def classify_iris(df: IrisDataFrame) -> List[int]:
    """Returns an array of iris classifications"""
    X = np.column_stack(df)
    return clf.predict(X)


def scale(value: float, factor: float) -> float:
    """value times factor; a negative factor is refused"""
    if factor < 0:
        raise ValueError(f"factor must not be negative, got {factor}")
    return value * factor


model = Model(classify=classify_iris, scale=scale)
AcumosSession().dump(model, "iris-acumos", sys.argv[1])
