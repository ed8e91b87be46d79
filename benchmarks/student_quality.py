"""Is the shipped student as good as the default model? Seeds, valid and holdout, paired bootstrap.

Every run (the baseline, each variant's seeds) is opened with ``load_run`` and scores its own split's
valid and holdout rows at its own calib thresholds (an export run scores with what it ships, int8 by
default). All runs must share one split (same holdout ids). Per seed, the paired bootstrap
(``toxmod.evaluation.paired``, the one ``toxmod.report`` uses) gives student minus baseline in
primary-label recall and macro F1 over the same holdout rows; a variant is "not worse" when every
seed's 95% interval for the recall difference reaches 0 or above. Export runs also get size and int8
parity on valid (from the export's metrics) and on holdout (int8 vs fp32 decisions, scored here).
Choose a variant on valid; the holdout columns are for the record.

    python benchmarks/student_quality.py --baseline <tfidf_xgboost run> \\
        --variant "h192 10 epochs=<export seed 0>,<export seed 1>" [--variant ...]

``--reference "name=recall,fpr,macro_f1"`` adds a published model's holdout numbers as a row of its
own (no scores, so no bootstrap). Prints the tables, writes ``benchmarks/results/student_quality.json`` and
``docs/benchmarks_student.md``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from harness import DOCS, arguments, provenance, write_results
from operating_point import flip_rate, operating_point

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("valid", "holdout")


def scored(run_dir: Path) -> dict[str, Any]:
    """The run's scheme, thresholds, and per split: ids, targets, scores (what it ships)."""
    from toxmod.runs import load_run

    loaded = load_run(run_dir)
    out: dict[str, Any] = {
        "scheme": loaded.dataset.scheme,
        "thresholds": loaded.thresholds.as_array(),
        "target_fpr": loaded.config["threshold"].get("target_fpr"),
    }
    for split in SPLITS:
        part = loaded.part(split)
        out[split] = (np.asarray(part.ids), part.targets, loaded.scorer.predict_scores(list(part.texts)))
    export_metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    if "export/int8_size_mb" in export_metrics:
        out["export"] = {k.removeprefix("export/"): v for k, v in export_metrics.items() if "export/" in k}
        loaded.scorer.score_with = "fp32"
        fp32 = loaded.scorer.predict_scores(list(loaded.part("holdout").texts))
        shipped = out["holdout"][2]  # the export's int8 scores
        out["export"]["holdout_int8_flip_rate"] = flip_rate(out["scheme"], shipped, fp32, out["thresholds"])
    return out


def split_metrics(run: dict[str, Any], split: str) -> dict[str, float]:
    _, targets, scores = run[split]
    return operating_point(run["scheme"], scores, targets, run["thresholds"])


def paired(student: dict[str, Any], baseline: dict[str, Any]) -> dict[str, dict[str, float]]:
    from toxmod.evaluation.paired import paired_bootstrap

    ids, targets, scores = student["holdout"]
    base_ids, _, base_scores = baseline["holdout"]
    if not np.array_equal(ids, base_ids):
        raise SystemExit("the runs' holdout rows differ: they were not made on one split")
    results = paired_bootstrap(
        student["scheme"], targets, scores, student["thresholds"], base_scores, baseline["thresholds"]
    )
    return {r.metric: {"difference": r.difference, "ci_low": r.ci_low, "ci_high": r.ci_high} for r in results}


def render(record: dict[str, Any]) -> str:
    primary = record["primary"]
    lines = [
        "# Student against the default model (janitr frozen split)",
        "",
        f"`{record['command']}` · {record['machine']} · {record['generated']}",
        "",
        f"Each run at its own calib thresholds (target FPR {record['target_fpr']}); export runs score with "
        "int8. Student minus baseline: paired bootstrap over the same holdout rows (2,000 resamples, 95% "
        "interval). Choose on valid.",
        "",
        f"| variant | run | valid {primary} recall | valid FPR | valid macro F1 | holdout {primary} recall "
        "| holdout FPR | holdout macro F1 | recall diff [95% CI] | macro F1 diff [95% CI] | int8 MB "
        "| int8 max diff (valid) | int8 flips valid / holdout |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(variant: str, run: dict[str, Any]) -> str:
        v, h = run["valid"], run["holdout"]
        diff = run.get("vs_baseline")
        cells = ["", ""]
        if diff:
            cells = [
                f"{d['difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
                for d in (diff["primary_recall"], diff["macro_f1"])
            ]
        export = run.get("export")
        size = f"{export['int8_size_mb']:.2f} | {export['int8_max_abs_diff']:.4f}" if export else " | "
        flips = f"{export['int8_flip_rate']:.2%} / {export['holdout_int8_flip_rate']:.2%}" if export else ""
        return (
            f"| {variant} | {Path(run['run']).name} | {v['recall']:.4f} | {v['fpr']:.4f} "
            f"| {v['macro_f1']:.4f} "
            f"| {h['recall']:.4f} | {h['fpr']:.4f} | {h['macro_f1']:.4f} | {cells[0]} | {cells[1]} | {size} "
            f"| {flips} |"
        )

    lines.append(row("baseline", record["baseline"]))
    for name, published in record.get("references", {}).items():
        lines.append(
            f"| {name} | published | | | | {published['recall']:.4f} | {published['fpr']:.4f} "
            f"| {published['macro_f1']:.4f} | | | | | |"
        )
    for variant, runs in record["variants"].items():
        lines += [row(variant, run) for run in runs]
    lines += [
        "",
        "Mean over seeds:",
        "",
        f"| variant | seeds | valid {primary} recall | valid macro F1 | holdout {primary} recall "
        "| holdout FPR | holdout macro F1 | recall not worse than baseline | holdout FPR within budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, summary in record["summary"].items():
        lines.append(
            f"| {variant} | {summary['seeds']} | {summary['valid_recall']:.4f} "
            f"| {summary['valid_macro_f1']:.4f} "
            f"| {summary['holdout_recall']:.4f} | {summary['holdout_fpr']:.4f} | "
            f"{summary['holdout_macro_f1']:.4f} | {'yes' if summary['not_worse'] else 'no'} "
            f"| {'yes' if summary['within_budget'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = arguments(__doc__, "student_quality", markdown=DOCS / "benchmarks_student.md")
    parser.add_argument("--baseline", type=Path, required=True, help="the default model's run directory")
    parser.add_argument(
        "--variant", action="append", required=True, help='"name=<run>,<run>" (one run per seed)'
    )
    parser.add_argument(
        "--reference", action="append", default=[], help='"name=recall,fpr,macro_f1" (published holdout)'
    )
    args = parser.parse_args()

    baseline = scored(args.baseline)
    record: dict[str, Any] = {
        **provenance("student_quality.py"),
        "primary": baseline["scheme"].primary_label,
        "target_fpr": baseline["target_fpr"],
        "baseline": {"run": str(args.baseline), **{s: split_metrics(baseline, s) for s in SPLITS}},
        "variants": {},
        "summary": {},
        "references": {},
    }
    for spec in args.reference:
        name, _, numbers = spec.partition("=")
        recall, fpr, macro_f1 = (float(n) for n in numbers.split(","))
        record["references"][name] = {"recall": recall, "fpr": fpr, "macro_f1": macro_f1}
    for spec in args.variant:
        name, _, paths = spec.partition("=")
        runs = []
        for path in paths.split(","):
            run = scored(Path(path))
            entry = {
                "run": path,
                **{s: split_metrics(run, s) for s in SPLITS},
                "vs_baseline": paired(run, baseline),
            }
            if "export" in run:
                entry["export"] = run["export"]
            runs.append(entry)
            print(f"{name}: {path} holdout recall {entry['holdout']['recall']:.4f}", flush=True)
        record["variants"][name] = runs
        record["summary"][name] = {
            "seeds": len(runs),
            "valid_recall": statistics.mean(r["valid"]["recall"] for r in runs),
            "valid_macro_f1": statistics.mean(r["valid"]["macro_f1"] for r in runs),
            "holdout_recall": statistics.mean(r["holdout"]["recall"] for r in runs),
            "holdout_fpr": statistics.mean(r["holdout"]["fpr"] for r in runs),
            "holdout_macro_f1": statistics.mean(r["holdout"]["macro_f1"] for r in runs),
            "not_worse": all(r["vs_baseline"]["primary_recall"]["ci_high"] >= 0 for r in runs),
            "within_budget": all(r["holdout"]["fpr"] <= float(record["target_fpr"]) for r in runs),
        }
    markdown = render(record)
    write_results(record, args.output, markdown, args.markdown)
    print(markdown)


if __name__ == "__main__":
    main()
