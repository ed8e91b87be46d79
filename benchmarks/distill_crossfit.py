"""Cross-fitted distillation on janitr: members, teachers, students, one command per stage.

    python benchmarks/distill_crossfit.py teachers --work <folder>
    python benchmarks/distill_crossfit.py students --work <folder> --teacher <stack_oof|stack|mean> \\
        [--epochs 10] [--seeds 3]

``teachers``: each member (``tfidf_logreg``, ``tfidf_xgboost``, ``fasttext``, one MiniLM) trained with
``crossfit.folds=5`` on the frozen split, then three ensembles of them (``combine=mean``, ``stack`` on
valid, ``stack_oof`` on the out-of-fold scores, members chosen on valid). Prints each one's out-of-fold
train numbers, valid and holdout scam recall / FPR at its calib threshold and macro F1; writes
``benchmarks/results/crossfit_teacher.json``. Choose a teacher on valid.

``students``: the default student (h192, int8-exportable) distilled from the chosen teacher, per seed:
the teacher's own train scores (``teacher_outputs=full``), its out-of-fold scores (``crossfit``), and
out-of-fold with EMA weight averaging (``--also`` adds variants, e.g. a search's best point); each
exported to int8. Then ``student_quality.py`` writes the
table (paired bootstrap against the ``tfidf_xgboost`` member, the dataset authors' int8 student as a
reference row) to ``docs/benchmarks_student.md``. Runs already finished in ``--work`` are reused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "tracking=none",
    "plots=false",
    "log_pyfunc=false",
    "latency.batch1_texts=0",
    "latency.batch64_texts=0",
]
MEMBERS = {
    "tfidf_logreg": ["model=tfidf_logreg"],
    "tfidf_xgboost": ["model=tfidf_xgboost"],
    "fasttext": ["model=fasttext"],
    "minilm": ["model=minilm", "model.max_epochs=3", "seed=13", "checkpoint.keep_last=false"],
}
COMBINERS = ("mean", "stack", "stack_oof")
STUDENTS = {
    "KD, teacher's own train scores": ["distill.teacher_outputs=full"],
    "KD, cross-fitted teacher outputs": ["distill.teacher_outputs=crossfit"],
    "KD, cross-fitted + EMA": ["distill.teacher_outputs=crossfit", "model.weight_averaging=ema"],
}
PUBLISHED = "janitr authors' int8 student (published)=0.612,0.012,0.801"


def trained(folder: Path, overrides: list[str], module: str = "toxmod.train") -> dict[str, Any]:
    """The run in ``folder`` (trained now unless it finished before) and its metrics."""
    if not (folder / "holdout_eval.json").is_file():
        started = time.perf_counter()
        command = [sys.executable, "-m", module, *overrides, f"hydra.run.dir={folder}"]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(f"{folder.name}: {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads((folder / "metrics.json").read_text())


def teacher_row(name: str, metrics: dict[str, Any], folder: Path) -> dict[str, Any]:
    holdout = json.loads((folder / "holdout_eval.json").read_text())["metrics"]
    return {
        "name": name,
        "oof_roc_auc": metrics.get("crossfit/scam/roc_auc"),
        "oof_recall_at_fpr": metrics.get("crossfit/scam/recall_at_fpr"),
        "valid_recall": metrics["valid/scam/recall"],
        "valid_fpr": metrics["valid/scam/fpr"],
        "holdout_recall": holdout["scam/recall"],
        "holdout_fpr": holdout["scam/fpr"],
        "holdout_macro_f1": holdout["macro_f1"],
        "members_selected": metrics.get("ensemble/members_selected"),
    }


def teachers(work: Path, output: Path) -> None:
    common = ["data=janitr", "split=frozen", *QUIET, f"paths.cache_dir={work / 'cache'}"]
    rows, folders = [], []
    for name, overrides in MEMBERS.items():
        folder = work / "members" / name
        rows.append(teacher_row(name, trained(folder, [*common, *overrides, "crossfit.folds=5"]), folder))
        folders.append(str(folder))
    for combine in COMBINERS:
        folder = work / "teachers" / combine
        overrides = [
            *common,
            "model=ensemble",
            f"model.combine={combine}",
            f"model.members=[{','.join(folders)}]",
        ]
        rows.append(teacher_row(f"ensemble, combine={combine}", trained(folder, overrides), folder))
    record = {
        **provenance("distill_crossfit.py"),
        "rows": rows,
    }
    write_results(record, output)
    print(
        "| model | out-of-fold train ROC-AUC | out-of-fold recall @ 2% FPR | valid recall | valid FPR "
        "| holdout recall | holdout FPR | holdout macro F1 |\n|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        oof = " | ".join(
            "" if row[k] is None else f"{row[k]:.4f}" for k in ("oof_roc_auc", "oof_recall_at_fpr")
        )
        print(
            f"| {row['name']} | {oof} | {row['valid_recall']:.4f} | {row['valid_fpr']:.4f} "
            f"| {row['holdout_recall']:.4f} | {row['holdout_fpr']:.4f} | {row['holdout_macro_f1']:.4f} |"
        )


def students(work: Path, teacher: str, epochs: int, seeds: int, also: list[str]) -> None:
    teacher_run = work / "teachers" / teacher
    common = [
        "experiment=janitr_kd",
        "student=h192_l4_a4_i768",
        f"model.max_epochs={epochs}",
        f"teacher.run={teacher_run}",
        "distill.allow_single_seed=true",  # one MiniLM among classical members
        *QUIET,
        "checkpoint.keep_last=false",
        f"paths.cache_dir={work / 'cache'}",
    ]
    chosen = dict(STUDENTS)
    for spec in also:  # "name=key=value key=value": e.g. the best point of a search, on more seeds
        name, _, overrides = spec.partition("=")
        chosen[name] = overrides.split()
    variants = []
    for index, (name, overrides) in enumerate(chosen.items()):
        exports = []
        for seed in range(seeds):
            folder = work / "students" / f"v{index}-seed{seed}"
            trained(folder, [*common, *overrides, f"seed={seed}"])
            export = folder.with_name(folder.name + "-int8")
            trained(export, [f"run={folder}", "tracking=none"], module="toxmod.export")
            exports.append(str(export))
        variants += ["--variant", f"{name}={','.join(exports)}"]
    baseline = work / "members" / "tfidf_xgboost"
    command = [sys.executable, "benchmarks/student_quality.py", "--baseline", str(baseline), *variants]
    subprocess.run([*command, "--reference", PUBLISHED], cwd=ROOT, check=True)


def main() -> None:
    parser = arguments(__doc__, "crossfit_teacher")  # --output: the teachers' table
    parser.add_argument("stage", choices=["teachers", "students"])
    parser.add_argument("--work", type=Path, required=True, help="where runs go (reused when finished)")
    parser.add_argument("--teacher", default="stack_oof", choices=COMBINERS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--also", action="append", default=[], help='another student variant: "name=key=value key=value"'
    )
    args = parser.parse_args()
    if args.stage == "teachers":
        teachers(args.work.resolve(), args.output)
    else:
        students(args.work.resolve(), args.teacher, args.epochs, args.seeds, args.also)


if __name__ == "__main__":
    main()
