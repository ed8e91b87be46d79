# %% [markdown]
# # Inspect a finished toxmod run
# A percent-format notebook (open in VS Code / Jupyter with jupytext, or run as a script):
# load a run's config, data split, model and thresholds, then look at its errors.
#
#     python notebooks/inspect_run.py outputs/train/<run dir>

# %%
import sys
from pathlib import Path

import numpy as np

from toxmod.runs import load_run

run_dir = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else sorted(Path("outputs/train").glob("*/holdout_eval.json"))[-1].parent
)
run = load_run(run_dir)
print(run.directory, run.config.model.name, run.thresholds.as_dict())

# %% Score the holdout through the scoring interface and apply the run's thresholds.
holdout = run.part("holdout")
scores = run.scorer.predict_scores(list(holdout.texts))
scheme = run.dataset.scheme
predictions = scheme.predict(scores, run.thresholds.as_array())

# %% The highest-scoring false positives of the primary label (what a moderator would see wrongly flagged).
view = scheme.report_view(scores, holdout.targets, predictions)
j = view.names.index(scheme.primary_label)
false_positives = np.flatnonzero(view.predictions[:, j] & ~view.targets[:, j])
for i in false_positives[np.argsort(-view.scores[false_positives, j])][:10]:
    print(f"{view.scores[i, j]:.3f}  {holdout.ids[i]}  {holdout.texts[i][:120]!r}")
