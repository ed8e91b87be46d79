"""Prints the thresholds a run applies, by decision name: ``applied_thresholds.py <run dir>``."""

import json
import sys
from pathlib import Path

try:
    from toxmod.runs import load_run
except ImportError:  # a checkout from before toxmod.runs
    from toxmod.evaluate import load_run

run = load_run(Path(sys.argv[1]))
print(json.dumps(dict(zip(run.dataset.scheme.decision_names, map(float, run.thresholds.values)))))
