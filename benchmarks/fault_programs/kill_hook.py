"""Runs ``toxmod.train`` with its arguments and kills itself (SIGKILL) at ``FAULT_POINT``: an MLflow store
call, the model fit, or a file opened for writing in ``model/``."""

import os
import runpy
import signal
import sys

from mlflow.entities import RunStatus
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

point = os.environ["FAULT_POINT"]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(cls, name, before=None, after=None):
    original = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
        if before and before(*args, **kwargs):
            die()
        result = original(self, *args, **kwargs)
        if after and after(*args, **kwargs):
            die()
        return result

    setattr(cls, name, wrapped)


def finishing(run_id, run_status=None, *rest, **kwargs):
    status = kwargs.get("run_status", run_status)
    return status is not None and RunStatus.to_string(status) == "FINISHED"


if point == "run created":
    wrap(SqlAlchemyStore, "create_run", after=lambda *a, **k: True)
elif point == "model fitting":
    import sklearn.linear_model

    wrap(sklearn.linear_model.LogisticRegression, "fit", before=lambda *a, **k: True)
elif point == "model writing":

    def audit(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            writing = args[1] is not None and any(c in args[1] for c in "wax+")
            if writing and os.path.basename(os.path.dirname(path)) == "model":
                die()

    sys.addaudithook(audit)
elif point == "holdout metrics logging":

    def holdout(run_id, metrics=(), *rest, **kwargs):
        return any(m.key.startswith("holdout/") for m in kwargs.get("metrics", metrics) or ())

    wrap(SqlAlchemyStore, "log_batch", before=holdout)
elif point == "just before FINISHED":
    wrap(SqlAlchemyStore, "update_run_info", before=finishing)
elif point == "just after FINISHED":
    wrap(SqlAlchemyStore, "update_run_info", after=finishing)
sys.argv = ["toxmod.train", *sys.argv[1:]]
runpy.run_module("toxmod.train", run_name="__main__", alter_sys=True)
