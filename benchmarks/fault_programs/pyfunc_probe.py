"""Loads the store's first pyfunc model and reports its loader, pickled files and warnings:
``pyfunc_probe.py <store uri>``."""

import sys
import warnings
from pathlib import Path

import mlflow
import mlflow.artifacts
from mlflow.tracking import MlflowClient

mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
uri = run.data.tags["pyfunc_model_uri"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = mlflow.pyfunc.load_model(uri)
files = [p.name for p in Path(mlflow.artifacts.download_artifacts(uri)).iterdir()]
pickles = [f for f in files if f.endswith(".pkl")]
loader = model.metadata.flavors["python_function"].get("loader_module")
print(f"loader {loader}; pickles {pickles}; warnings {len(caught)}")
