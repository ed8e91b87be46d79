"""A finished run judged beyond its own holdout number, as a user runs it: on another labelled dataset
with a label mapping, by slice, for bias on identity columns, against a functional test suite, and
``select`` refusing a run below a suite gate; each an MLflow evaluation run linked to the model and
the dataset. Bad input is one line, exit 2, nothing recorded as finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from tests.helpers import compose_train, run_entry, tracking_overrides
from toxmod.config import compose_config, spec_of
from toxmod.data import build_dataset
from toxmod.errors import ToxmodError
from toxmod.models import load_scorer
from toxmod.paths import project_root
from toxmod.runs.evaluations import EVALUATED_TAG
from toxmod.runs.record import RunDir
from toxmod.spec import DataSpec
from toxmod.stages.evaluate import Evaluation, evaluate
from toxmod.stages.report import report
from toxmod.stages.select import select
from toxmod.stages.train import TrainResult, train

SUITE = project_root() / "docs" / "examples" / "toxicity_suite.csv"
DAVIDSON = ["data=davidson", "data.max_rows=1500", "split=stratified", "model=tfidf_logreg", "bootstrap=50"]


@pytest.fixture(scope="module")
def davidson_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, dict[str, str]]:
    """A small davidson run (a logged model, slices of its holdout by text length) in its own store."""
    root = tmp_path_factory.mktemp("beyond")
    store = {"uri": f"sqlite:///{root / 'mlruns.db'}", "artifact_root": str(root / "mlartifacts")}
    overrides = [*DAVIDSON, "log_pyfunc=true", "plots=true", "evaluation.slices=[text_length]"]
    overrides += tracking_overrides(store)
    return train(compose_train(overrides), root / "run"), store


def _evaluate(run: TrainResult, store: dict[str, str], out: Path, *overrides: str) -> Evaluation:
    cfg = compose_config(
        "evaluate", [f"run={run.run_dir}", "hardware=cpu", *tracking_overrides(store), *overrides]
    )
    return evaluate(cfg, out)


def _evaluation_runs(store: dict[str, str], run_id: str) -> list:  # list[mlflow.entities.Run]
    client = MlflowClient(store["uri"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.{EVALUATED_TAG} = '{run_id}'")


def test_training_records_the_holdout_by_slice(davidson_run) -> None:  # noqa: ANN001
    run, _ = davidson_run
    table = pd.read_csv(run.run_dir / RunDir.BREAKDOWN / "slices.csv", keep_default_na=False)
    assert set(table["family"]) == {"text_length"}
    assert set(table["decision"]) == {"at_least_offensive", "at_least_hate"}
    holdout_rows = run.metrics["holdout/n_examples"]
    assert (table.groupby("decision")["n"].sum() == holdout_rows).all()  # every holdout row in one slice
    assert run.metrics["holdout/slice/text_length/lt64/at_least_hate/n"] == table["n"].iloc[0]
    # 64 "neither" rows in 4 slices: none has the 50 negatives a 2% budget needs, so no FPR is shown
    offensive = table[table["decision"] == "at_least_offensive"]
    assert (
        offensive["fpr"].eq("").all() and offensive["note"].str.contains("< 50 \\(FPR budget 0.02\\)").all()
    )
    assert (run.run_dir / RunDir.PLOTS / "slices_text_length_at_least_offensive.png").is_file()


def test_a_davidson_run_on_jigsaw_with_a_label_map(davidson_run, tmp_path: Path) -> None:  # noqa: ANN001
    run, store = davidson_run
    result = _evaluate(
        run, store, tmp_path, "data=jigsaw", "data.max_rows=800", "label_map={at_least_offensive: toxic}"
    )
    assert result.rows is not None and result.rows.mapping is not None
    assert result.rows.mapping.pairs == (("at_least_offensive", "toxic"),)
    metrics = result.metrics
    assert metrics["data/n_examples"] == 800 and 0 <= metrics["data/toxic/recall"] <= 1
    assert metrics["data/macro_f1_ci_low"] <= metrics["data/macro_f1"] <= metrics["data/macro_f1_ci_high"]
    # at the run's own threshold: the view's threshold is the run's at_least_offensive one
    saved = json.loads((run.run_dir / RunDir.THRESHOLDS).read_text())["thresholds"]
    assert result.thresholds == {"toxic": saved["at_least_offensive"]}
    record = json.loads((tmp_path / "evaluation.json").read_text())
    assert record["label_map"] == {"at_least_offensive": "toxic"} and record["dataset"] == "jigsaw"

    (evaluation,) = [
        r for r in _evaluation_runs(store, run.run_id) if r.info.run_id == result.evaluation_run_id
    ]
    assert evaluation.info.status == "FINISHED" and evaluation.data.tags["dataset"] == "jigsaw"
    assert evaluation.data.metrics["toxic/recall"] == metrics["data/toxic/recall"]
    client = MlflowClient(store["uri"])
    model_id = client.get_run(run.run_id).data.tags["pyfunc_model_uri"].rsplit("/", 1)[-1]
    linked = {(m.key, m.dataset_name) for m in client.get_logged_model(model_id).metrics}
    assert ("toxic/recall", "jigsaw") in linked and ("holdout/macro_f1", "davidson.holdout") in linked
    inputs = {d.dataset.name: d.dataset.digest for d in evaluation.inputs.dataset_inputs}
    assert inputs == {"jigsaw": result.rows.digest[:36]}


def test_the_run_own_holdout_by_text_length(davidson_run, tmp_path: Path) -> None:  # noqa: ANN001
    run, store = davidson_run
    result = _evaluate(
        run, store, tmp_path, "evaluation.slices=[text_length]", "evaluation.slice_edges.text_length=[80]"
    )
    assert result.reproduced is True and result.breakdown is not None
    assert {r.slice for r in result.breakdown.slices} == {"<80", ">=80"}
    assert (tmp_path / "slices.csv").is_file() and (
        tmp_path / "plots" / "slices_text_length_at_least_hate.png"
    ).is_file()
    evaluation = MlflowClient(store["uri"]).get_run(result.evaluation_run_id)
    assert "slice/text_length/lt80/at_least_offensive/n" in evaluation.data.metrics
    assert evaluation.data.tags["dataset"] == "davidson.holdout"


def test_bias_metrics_equal_scikit_learn_on_the_same_predictions(davidson_run, tmp_path: Path) -> None:  # noqa: ANN001
    run, store = davidson_run
    madlibs = ["data=bias_madlibs", "data.max_rows=2500", "label_map={at_least_offensive: toxic}"]
    identities = ["evaluation.identities=[identity_*]", "evaluation.min_identity_examples=40"]
    result = _evaluate(run, store, tmp_path, *madlibs, *identities, "bootstrap=0")
    bias = result.breakdown.bias if result.breakdown else None
    assert bias is not None and bias.decision == "at_least_toxic" and len(bias.identities) >= 10
    assert all(name.startswith("identity_") is False for name in bias.skipped)
    # the same rows and scores, computed independently with scikit-learn on the subsets
    cfg = compose_config("evaluate", [f"run={run.run_dir}", *madlibs])
    data = build_dataset(spec_of(DataSpec, cfg.data), [("evaluation.identities", "identity_*")])
    scores = load_scorer(run.run_dir / "model").predict_scores(list(data.texts))
    offensive = scores[:, 1] + scores[:, 2]
    toxic = data.targets == 1
    assert bias.overall_auc == pytest.approx(roc_auc_score(toxic, offensive), abs=1e-9)
    for row in bias.identities:
        member = data.columns[f"identity_{row.identity}"].astype(float) >= 0.5
        bpsn, bnsp = (member & ~toxic) | (~member & toxic), (member & toxic) | (~member & ~toxic)
        assert row.subgroup_auc == pytest.approx(roc_auc_score(toxic[member], offensive[member]), abs=1e-9)
        assert row.bpsn_auc == pytest.approx(roc_auc_score(toxic[bpsn], offensive[bpsn]), abs=1e-9)
        assert row.bnsp_auc == pytest.approx(roc_auc_score(toxic[bnsp], offensive[bnsp]), abs=1e-9)
    means = [
        np.mean([getattr(r, name) ** -5 for r in bias.identities]) ** (-1 / 5)
        for name in ("subgroup_auc", "bpsn_auc", "bnsp_auc")
    ]
    assert bias.final_score == pytest.approx(0.25 * bias.overall_auc + 0.75 * np.mean(means), abs=1e-12)
    table = pd.read_csv(tmp_path / "bias.csv", keep_default_na=False)
    assert len(table) == len(bias.identities) + len(bias.skipped)


def test_a_suite_and_the_select_gate(davidson_run, tmp_path: Path) -> None:  # noqa: ANN001
    run, store = davidson_run
    suite = [f"suite={SUITE}", "suite_format.group_column=target", "suite_format.decision=offensive"]
    result = _evaluate(run, store, tmp_path / "eval", *suite)
    assert result.suite is not None and result.suite.decision == "at_least_offensive"
    assert len(result.suite.functionalities) == 9 and result.metrics == {}
    functionalities = {r.name: r for r in result.suite.functionalities}
    assert sum(r.n for r in functionalities.values()) == 40
    balanced = np.mean(list(result.suite.by_label.values()))
    assert result.suite.balanced_pass_rate == pytest.approx(balanced)
    assert json.loads((tmp_path / "eval" / "suite.json").read_text())["pass_rate"] == result.suite.pass_rate

    client = MlflowClient(store["uri"])
    gate = [
        "allow_over_budget=true",
        *suite,
        *tracking_overrides(store),
        f"paths.downloads={tmp_path / 'dl'}",
    ]
    before = len(_evaluation_runs(store, run.run_id))
    with pytest.raises(
        ToxmodError, match=r"none of the 1 candidates can be crowned .* nothing was registered"
    ):
        select(compose_config("select", [*gate, "min_pass_rate=1.0"]))
    assert client.search_registered_models() == []
    assert len(_evaluation_runs(store, run.run_id)) == before  # the gate reused the suite's evaluation run
    chosen = select(compose_config("select", [*gate, f"min_pass_rate={result.suite.balanced_pass_rate}"]))
    assert chosen.ranked[0].run_id == run.run_id and chosen.version == "1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["evaluation.slices=[nope]"], r"column 'nope' \(evaluation.slices\) not found"),
        (
            [
                "data=bias_madlibs",
                "data.max_rows=300",
                "label_map={offensive: toxic}",
                "evaluation.identities=[template]",
            ],
            r"identity column 'template' holds '[a-z_]+'; identity columns are 0/1",
        ),
        (
            ["data=jigsaw", "data.max_rows=100", "label_map={spam: toxic}"],
            r"label_map: 'spam' is not a decision",
        ),
        (
            ["evaluation.slices=[text_length]", "evaluation.slice_edges.text_length=[100000]"],
            r"slice >=100000 of 'text_length' is empty",
        ),
    ],
)
def test_bad_input_is_one_line_and_records_nothing(davidson_run, tmp_path: Path, overrides, message) -> None:  # noqa: ANN001
    run, store = davidson_run
    before = len(_evaluation_runs(store, run.run_id))
    out = tmp_path / "out"
    done = run_entry(
        "evaluate", f"run={run.run_dir}", *overrides, *tracking_overrides(store), f"hydra.run.dir={out}"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and __import__("re").search(message, done.stderr), done.stderr
    assert len(_evaluation_runs(store, run.run_id)) == before
    assert not (out / "evaluation.json").exists() and not (out / "holdout_eval.json").exists()


def test_a_training_slice_column_that_does_not_exist_stops_before_training(tmp_path: Path) -> None:
    done = run_entry(
        "train", *DAVIDSON, "evaluation.slices=[platform]", "tracking=none", f"hydra.run.dir={tmp_path}"
    )
    assert done.returncode == 2 and "column 'platform' (evaluation.slices) not found" in done.stderr
    assert not (tmp_path / "model").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_report_shows_each_dataset_slice_family_and_bias_table(davidson_run, tmp_path: Path) -> None:  # noqa: ANN001
    run, store = davidson_run
    madlibs = ["data=bias_madlibs", "data.max_rows=1500", "label_map={offensive: toxic}", "bootstrap=0"]
    breakdown = ["evaluation.identities=[identity_*]", "evaluation.min_identity_examples=20"]
    _evaluate(run, store, tmp_path / "eval", *madlibs, *breakdown, "evaluation.slices=[template]")
    cfg = compose_config(
        "report", [*tracking_overrides(store), f"output={tmp_path / 'report'}", "resamples=100"]
    )
    page = report(cfg, tmp_path / "report").markdown.read_text()
    assert "## Other datasets and suites" in page and "| bias_madlibs |" in page
    assert "## Slices by `text_length`: " in page and " on holdout" in page  # the training run's own
    assert "## Slices by `template`: " in page and "## Bias: " in page and "on bias_madlibs" in page
    images = [line for line in page.splitlines() if line.startswith("![")]
    assert any("bias" in line for line in images) and any("slices_template" in line for line in images)
    for line in images:
        assert (tmp_path / "report" / line.split("](")[1].rstrip(")").replace("%20", " ")).is_file()
