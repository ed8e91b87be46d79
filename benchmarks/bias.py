"""Unintended-bias table on the Dixon et al. 2018 identity templates (``data=bias_madlibs``): per
model, the overall AUC, the subgroup / BPSN / BNSP power means (p = -5), the final score, and the
identities each model treats worst -- every number from ``python -m toxmod.evaluate`` itself.

    python benchmarks/bias.py --run default=<run dir> --run minilm=<run dir>
    python benchmarks/bias.py --train     # trains both on data=jigsaw first (the commands below)

Each run is scored on all 76,564 template sentences at its own thresholds (``toxic`` answers the
data's ``at_least_toxic``); the data is evaluation only. Writes benchmarks/results/bias_madlibs.json
and a markdown table (``--markdown``) for docs/benchmarks.md.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {  # the runs --train makes (toxmod.train overrides)
    "default": ["data=jigsaw"],
    "minilm": ["data=jigsaw", "model=minilm", "model.max_train_rows=8000", "model.max_epochs=1"],
}
EVALUATE = ["data=bias_madlibs", "evaluation.identities=[identity_*]", "evaluation.slices=[template]"]
AUCS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")


def _toxmod(module: str, overrides: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", f"toxmod.{module}", *overrides], cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"python -m toxmod.{module} {' '.join(overrides)} failed ({done.returncode})")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def evaluate(name: str, run: Path, out: Path, env: dict[str, str]) -> dict:
    folder = out / name
    _toxmod(
        "evaluate", [f"run={run}", *EVALUATE, "bootstrap=200", "record=false", f"hydra.run.dir={folder}"], env
    )
    record = json.loads((folder / "evaluation.json").read_text())
    metrics = {k.removeprefix("data/"): v for k, v in record["metrics"].items()}
    metrics |= {
        k: v
        for k, v in record["breakdown"].items()
        if k.startswith(("bias/overall", "bias/power", "bias/final"))
    }
    identities = [r for r in _rows(folder / "bias.csv") if not r.get("skipped")]
    templates = [r for r in _rows(folder / "slices.csv") if r["family"] == "template"]
    return {
        "run": str(run),
        "label_map": record["label_map"],
        "thresholds": record["thresholds"],
        "metrics": metrics,
        "identities": {r["identity"]: {k: float(r[k]) for k in AUCS} for r in identities},
        "templates": {r["slice"]: {k: r[k] for k in ("n", "recall", "fpr", "note")} for r in templates},
    }


def markdown(results: dict[str, dict], command: str, machine: str) -> str:
    lines = [
        f"Machine: {machine}. Command: `{command}`.",
        "",
        "| model | n | overall AUC | subgroup AUC (p=-5) | BPSN AUC (p=-5) | BNSP AUC (p=-5) | final score |"
        " FPR at threshold | recall at threshold | worst 3 identities by BPSN | worst 3 by BNSP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        m, ids = result["metrics"], result["identities"]
        worst = {k: sorted(ids, key=lambda i, k=k: ids[i][k])[:3] for k in ("bpsn_auc", "bnsp_auc")}
        shown = {k: ", ".join(f"{i} {ids[i][k]:.2f}" for i in v) for k, v in worst.items()}
        lines.append(
            f"| {name} | {int(m['n_examples'])} | {m['bias/overall_auc']:.3f} | "
            f"{m['bias/power_mean/subgroup_auc']:.3f} | {m['bias/power_mean/bpsn_auc']:.3f} | "
            f"{m['bias/power_mean/bnsp_auc']:.3f} | **{m['bias/final_score']:.4f}** | "
            f"{m['at_least_toxic/fpr']:.3f} | {m['at_least_toxic/recall']:.3f} | {shown['bpsn_auc']} | "
            f"{shown['bnsp_auc']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = arguments(__doc__, "bias_madlibs", markdown=ROOT / "benchmarks" / "results" / "bias_madlibs.md")
    parser.add_argument("--run", action="append", default=[], help="name=<run dir or run id>")
    parser.add_argument("--train", action="store_true", help="train the runs of TRAIN first")
    args = parser.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="toxmod-bias-") as tmp:
        runs = dict(item.split("=", 1) for item in args.run)
        if args.train:
            for name, overrides in TRAIN.items():
                folder = Path(tmp) / "runs" / name
                _toxmod("train", [*overrides, "plots=false", "tracking=none", f"hydra.run.dir={folder}"], env)
                runs[name] = str(folder)
        if not runs:
            parser.error("give --run name=<run dir> (one or more) or --train")
        results = {name: evaluate(name, Path(run), Path(tmp) / "eval", env) for name, run in runs.items()}
    payload = {
        **provenance("bias.py"),
        "evaluate": EVALUATE,
        "train": TRAIN,
        "results": results,
    }
    table = markdown(results, payload["command"], payload["machine"])
    write_results(payload, args.output, table, args.markdown)
    print(table)


if __name__ == "__main__":
    main()
