"""A run's model as an MLflow pyfunc model: what ``mlflow.pyfunc.load_model`` and ``mlflow models serve``
load (``models:/<name>@champion`` after ``toxmod.select``).

The logged model holds the run's ``model/`` folder and ``thresholds.json`` as artifacts and is
logged "from code": ``pyfunc_code.py`` (this package's file, copied beside the artifacts) imports
toxmod and sets ``ToxmodPyfunc`` as the model, so loading it unpickles nothing and reads the model
files as data. Input is a table with a ``text`` column; output one row per text with
``score/<output>`` probabilities and ``decision/<decision>`` booleans at the run's thresholds (and
``level`` for level schemes).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from toxmod.data.schemes import LabelScheme, LevelsScheme
from toxmod.runs.opening import open_scorer
from toxmod.thresholds import Thresholds

TEXT_COLUMN = "text"
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")  # what MLflow runs to load the model
# Distributions a served toxmod model imports (pinned to what is installed where the run was logged).
REQUIREMENTS = (
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "xgboost-cpu",
    "fasttext-numpy2",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "onnxruntime",
    "omegaconf",
    "hydra-core",
    "lightning",
)


def pip_requirements() -> list[str]:
    """The installed versions of what scoring needs (``name==version``), for the logged model."""
    pinned = []
    for name in REQUIREMENTS:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pinned


def output_columns(scheme: LabelScheme) -> list[tuple[str, str]]:
    """``(column, type)`` of the pyfunc output, in order."""
    columns = [(f"score/{name}", "double") for name in scheme.output_names]
    columns += [(f"decision/{name}", "boolean") for name in scheme.decision_names]
    if isinstance(scheme, LevelsScheme):
        columns.append(("level", "string"))
    return columns


def signature_for(scheme: LabelScheme) -> Any:
    """A ``text`` column in; scores and decisions out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = Schema([ColSpec(kind, name) for name, kind in output_columns(scheme)])
    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)]), outputs=outputs)


def predictions_frame(scheme: LabelScheme, scores: Any, thresholds: Thresholds) -> pd.DataFrame:
    """The pyfunc output for ``scores``."""
    import numpy as np

    cut = thresholds.as_array()[None, :]
    frame = pd.DataFrame({f"score/{name}": scores[:, j] for j, name in enumerate(scheme.output_names)})
    decided = scheme.decision_scores(scores) >= cut
    for j, name in enumerate(scheme.decision_names):
        frame[f"decision/{name}"] = decided[:, j]
    if isinstance(scheme, LevelsScheme):
        frame["level"] = np.asarray(scheme.levels, dtype=object)[
            scheme.predict(scores, thresholds.as_array())
        ]
    return frame


class ToxmodPyfunc(PythonModel):
    """Loads the run's scorer and thresholds from the logged artifacts; predicts a ``text`` column."""

    # The signature is given at logging, and predict checks its input itself: MLflow's type-hint
    # validation (and its warning about missing hints) is skipped.
    _skip_type_hint_validation = True

    def load_context(self, context):  # noqa: ANN001, ANN201
        artifacts = context.artifacts
        self.scorer, self.thresholds = open_scorer(Path(artifacts["model"]), Path(artifacts["thresholds"]))

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if TEXT_COLUMN not in frame:
            raise ValueError(f"the input needs a {TEXT_COLUMN!r} column; got {list(frame.columns)}")
        texts = frame[TEXT_COLUMN].astype(str).tolist()
        return predictions_frame(self.scorer.label_scheme, self.scorer.predict_scores(texts), self.thresholds)
