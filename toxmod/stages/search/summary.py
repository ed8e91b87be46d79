"""What a search leaves behind: a table of its trials, the best trial (or the Pareto front), and the
history, parameter-importance and Pareto plots, printed and logged to the study's parent run."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

from toxmod.progress import console, print_whole
from toxmod.redact import redact
from toxmod.stages.search.study import INTERRUPTED, METRIC_NAMES, RUN_ID, counts
from toxmod.tables import rows_table


def trial_rows(study: Any) -> tuple[list[str], list[list[Any]]]:
    """One row per trial: number, state, objective values, parameters, its run id."""
    trials = study.get_trials(deepcopy=False)
    names = list(
        study.user_attrs.get(METRIC_NAMES) or [f"objective {i}" for i in range(len(study.directions))]
    )
    params = sorted({key for trial in trials for key in trial.params})
    rows = []
    for trial in trials:
        values = trial.values or [math.nan] * len(names)
        state = trial.state.name.lower()
        if trial.user_attrs.get(INTERRUPTED):
            state = "interrupted"
        over = [v for v in trial.constraints.values()] if trial.constraints else []
        budget = "" if not over else ("yes" if max(over) <= 0 else f"over by {max(over):.3f}")
        rows.append(
            [
                trial.number,
                state,
                budget,
                *(f"{v:.4f}" for v in values),
                *(trial.params.get(p, "") for p in params),
                trial.user_attrs.get(RUN_ID, ""),
            ]
        )
    return ["trial", "state", "within FPR budget", *names, *params, "run_id"], rows


def best_trials(study: Any) -> list[Any]:
    """The best trial of a single-objective study, else the Pareto front, among the trials within their
    FPR budgets on valid (Optuna's constraint); none before a trial completes or while none is within."""
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        return []
    if len(study.directions) > 1:
        return list(study.best_trials)
    try:
        return [study.best_trial]
    except ValueError:  # every complete trial is over its FPR budget on valid
        return []


def write_summary(study: Any, folder: Path) -> dict[str, Path]:
    """``trials.csv``, ``pareto_front.csv`` (several objectives) and the plots, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    columns, rows = trial_rows(study)
    files = {"trials": folder / "trials.csv"}
    _write_csv(files["trials"], columns, rows)
    best = {t.number for t in best_trials(study)}
    if len(study.directions) > 1:
        files["pareto_front"] = folder / "pareto_front.csv"
        _write_csv(files["pareto_front"], columns, [row for row in rows if row[0] in best])
    files.update(_plots(study, folder))
    return files


def _write_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def _plots(study: Any, folder: Path) -> dict[str, Path]:
    """History, parameter importances and (several objectives) the Pareto front, where each can be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    names = list(study.user_attrs.get(METRIC_NAMES) or [])
    drawn: dict[str, Path] = {}
    jobs: list[tuple[str, Any]] = []
    if len(study.directions) == 1:
        jobs.append(
            (
                "history",
                lambda: optuna_plots.plot_optimization_history(study, target_name=(names or ["value"])[0]),
            )
        )
    else:
        jobs.append(
            ("pareto_front", lambda: optuna_plots.plot_pareto_front(study, target_names=names or None))
        )
    varied = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    if len(complete) >= 2 and varied:
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        jobs.append(("param_importances", lambda: optuna_plots.plot_param_importances(study, target=target)))
    for name, draw in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw()
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            drawn[path.name] = path
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # too few trials for this plot
            console.print(
                f"search: no {name} plot ({(str(error).splitlines() or [type(error).__name__])[0]})"
            )
    return drawn


def print_summary(study: Any) -> None:
    """The trials table and the best trial(s), on the console."""
    columns, rows = trial_rows(study)
    found = counts(study)
    title = (
        f"search {study.study_name}: {found['complete']} complete, {found['pruned']} pruned, "
        f"{found['failed']} failed"
        + (f", {found['interrupted']} interrupted" if found["interrupted"] else "")
    )
    print_whole(rows_table(title, columns, [[str(c) for c in row] for row in rows]))
    best = best_trials(study)
    if len(best) == 1:
        trial = best[0]
        console.print(
            f"best: trial {trial.number} · {trial.values} · {trial.params}"
            f" · run {trial.user_attrs.get(RUN_ID, '')}"
        )
    elif best:
        console.print(f"Pareto front: trials {', '.join(str(t.number) for t in best)}")
    elif found["complete"]:
        console.print(
            "no complete trial is within its FPR budget on valid: none is best (select would crown none)"
        )


def log_summary(
    tracker: Any, parent_run_id: str | None, study: Any, files: dict[str, Path], storage: str
) -> None:
    """The study on its parent run: where it is stored, the best trial's values and parameters, the
    counts, and the tables and plots as artifacts under ``search/``."""
    if parent_run_id is None:
        return
    client = tracker.client
    found = counts(study)
    names = list(study.user_attrs.get(METRIC_NAMES) or [])
    tags = {"study_storage": redact(storage), "search.trials": str(found["finished"])}
    best = best_trials(study)
    metrics = {f"search/{state}": float(found[state]) for state in ("complete", "pruned", "failed")}
    if len(best) == 1:
        trial = best[0]
        tags.update({"best_trial": str(trial.number), "best_run_id": str(trial.user_attrs.get(RUN_ID, ""))})
        for name, value in zip(names or ["value"], trial.values):
            metrics[f"best/{name}"] = float(value)
        for key, value in trial.params.items():
            tags[f"best.{key}"] = str(value)
    elif best:
        tags["pareto_trials"] = ",".join(str(t.number) for t in best)
    for key, value in tags.items():
        client.set_tag(parent_run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(parent_run_id, key, value)
    for path in files.values():
        client.log_artifact(parent_run_id, str(path), "search")
