"""Runs ``toxmod.train`` with Hydra's ``${now:}`` frozen at one second (two sweeps started in the
same second)."""

import datetime
import runpy
import sys

import hydra.core.utils


class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 1, 12, 0, 0)


hydra.core.utils.datetime = Frozen
sys.argv = ["toxmod.train", *sys.argv[1:]]
runpy.run_module("toxmod.train", run_name="__main__", alter_sys=True)
