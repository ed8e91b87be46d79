"""The code MLflow runs to load a toxmod pyfunc model ("models from code"): it imports toxmod and
names the model class; the run's model files are read as data (npz, JSON, UBJ, safetensors, ONNX).
Nothing is unpickled, so ``mlflow.pyfunc.load_model("models:/<name>@champion")`` runs no code that
came with the model's files.
"""

from mlflow.models import set_model

from toxmod.stages.pyfunc_model import ToxmodPyfunc

set_model(ToxmodPyfunc())
