"""Bad input through the real entry points: a one-line error naming the culprit, exit code 2, no
FINISHED run. The entry points run in this process (``run_entry``); two cases also run as a real
process, for the exit code a shell sees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import janitr_frame, run_cli, run_entry, stored_runs, tracking_overrides


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def frozen_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real frozen split of a janitr slice, made by the split CLI."""
    folder = tmp_path_factory.mktemp("frozen") / "split"
    made = run_entry("split", "data=janitr", "data.max_rows=600", f"out={folder}")
    assert made.returncode == 0, made.stderr
    return folder


def janitr_csv(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    frame = janitr_frame()
    frame = frame[frame.split != "none"].head(300).copy()
    return write(edit(frame), tmp_path / "janitr_edit.csv")


CSV = [
    "data=csv",
    "data.text_column=text",
    "data.label_columns=[scam,topic_crypto]",
    "data.id_column=id",
    "split=stratified",
]


def case_missing_file(tmp_path: Path) -> tuple[list[str], str]:
    return [
        "data=csv",
        f"data.path={tmp_path / 'nope.csv'}",
        "data.label_columns=[spam]",
    ], "nope.csv does not exist"


def case_missing_text_column(tmp_path: Path) -> tuple[list[str], str]:
    path = janitr_csv(tmp_path, lambda f: f.rename(columns={"text": "body"}))
    return [*CSV, f"data.path={path}"], "column 'text' (data.text_column) not found"


def case_missing_label_column(tmp_path: Path) -> tuple[list[str], str]:
    path = janitr_csv(tmp_path, lambda f: f.drop(columns=["scam"]))
    return [*CSV, f"data.path={path}"], "column 'scam' (data.label_columns) not found"


def case_empty_text(tmp_path: Path) -> tuple[list[str], str]:
    path = janitr_csv(tmp_path, lambda f: f.assign(text=["   "] + list(f.text[1:])))
    return [*CSV, f"data.path={path}"], "text column 'text' has 1 empty texts"


def case_non_string_text(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "numbers.jsonl"
    path.write_text('{"text": "fine", "y": 1}\n{"text": 42, "y": 0}\n')
    return [
        "data=csv",
        f"data.path={path}",
        "data.label_columns=[y]",
    ], "text column 'text' has 1 non-string values"


def case_labels_outside_scheme(tmp_path: Path) -> tuple[list[str], str]:
    path = janitr_csv(tmp_path, lambda f: f.assign(scam=["2"] + list(f.scam[1:])))
    return [*CSV, f"data.path={path}"], "label column 'scam' has 1 values outside {0, 1}: ['2'] (row 0)"


def case_duplicate_ids(tmp_path: Path) -> tuple[list[str], str]:
    path = janitr_csv(tmp_path, lambda f: f.assign(id=["same", "same"] + list(f.id[2:])))
    return [*CSV, f"data.path={path}"], "id column 'id' has 1 duplicate IDs"


def case_unknown_group_option(tmp_path: Path) -> tuple[list[str], str]:
    return ["model=transformer_xl"], "Could not find 'model/transformer_xl'"


def case_unknown_key(tmp_path: Path) -> tuple[list[str], str]:
    return [
        "data.txt_column=body"
    ], "data.txt_column is not a key of this command; did you mean data.text_column=body?"


def case_leakage(tmp_path: Path) -> tuple[list[str], str]:
    return ["data=janitr", "split.on_leak=refuse"], "holdout rows have a train text (ids "


def case_split_ids_not_in_data(tmp_path: Path, frozen: Path) -> tuple[list[str], str]:
    # The folder was frozen on a 600-row slice; a different 300-row slice lacks most of its IDs.
    return [
        "data=janitr",
        "data.max_rows=300",
        "split=frozen",
        f"split.dir={frozen}",
        "split.allow_data_change=true",
    ], "IDs are not in data file"


def case_manifest_mismatch(tmp_path: Path, frozen: Path) -> tuple[list[str], str]:
    broken = tmp_path / "broken"
    shutil.copytree(frozen, broken)
    (broken / "valid.ids.txt").write_text(
        "\n".join((frozen / "valid.ids.txt").read_text().split()[:-1]) + "\n"
    )
    return ["data=janitr", "data.max_rows=600", "split=frozen", f"split.dir={broken}"], (
        "sha256 of valid.ids.txt does not match the manifest"
    )


def case_manifest_of_other_data(tmp_path: Path, frozen: Path) -> tuple[list[str], str]:
    manifest = json.loads((frozen / "MANIFEST.json").read_text())
    other = tmp_path / "other"
    shutil.copytree(frozen, other)
    (other / "MANIFEST.json").write_text(json.dumps({**manifest, "data_sha256": "0" * 64}))
    return [
        "data=janitr",
        "data.max_rows=600",
        "split=frozen",
        f"split.dir={other}",
    ], "data_sha256 000000000000"


def case_unknown_checkpoint_monitor(tmp_path: Path) -> tuple[list[str], str]:
    overrides = ["data=janitr", "data.max_rows=600", "model=student", "student=tiny"]
    return [*overrides, "checkpoint.monitor=valid/scam/recal_at_fpr"], (
        "checkpoint.monitor=valid/scam/recal_at_fpr is not a validation metric; "
        "choose one of valid/scam/recall_at_fpr,"
    )


SIMPLE_CASES = [
    case_missing_file,
    case_missing_text_column,
    case_missing_label_column,
    case_empty_text,
    case_non_string_text,
    case_labels_outside_scheme,
    case_duplicate_ids,
    case_unknown_group_option,
    case_unknown_key,
    case_leakage,
    case_unknown_checkpoint_monitor,
]
SPLIT_CASES = [case_split_ids_not_in_data, case_manifest_mismatch, case_manifest_of_other_data]


def assert_user_error(
    tmp_path: Path,
    store: dict[str, str],
    overrides: list[str],
    expected: str,
    run=run_entry,  # noqa: ANN001
) -> None:
    result = run("train", *overrides, *tracking_overrides(store), f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    # Refused before anything was written: no run folder is left (not even Hydra's .hydra/).
    assert not (tmp_path / "run").exists()
    database = Path(store["uri"].removeprefix("sqlite:///"))
    if database.exists():
        runs = stored_runs(store)
        assert all(r.info.status != "FINISHED" for r in runs)


@pytest.mark.parametrize("case", SIMPLE_CASES, ids=lambda c: c.__name__.removeprefix("case_"))
def test_bad_input_gives_one_line_errors(case, tmp_path: Path, store: dict[str, str]) -> None:  # noqa: ANN001
    assert_user_error(tmp_path, store, *case(tmp_path))


@pytest.mark.parametrize("case", SPLIT_CASES, ids=lambda c: c.__name__.removeprefix("case_"))
def test_bad_frozen_splits_give_one_line_errors(
    case,
    tmp_path: Path,
    store: dict[str, str],  # noqa: ANN001
    frozen_folder: Path,
) -> None:
    assert_user_error(tmp_path, store, *case(tmp_path, frozen_folder))


@pytest.mark.slow
@pytest.mark.parametrize("case", [case_unknown_key, case_missing_file], ids=["unknown_key", "missing_file"])
def test_a_real_process_exits_2_with_one_line(case, tmp_path: Path, store: dict[str, str]) -> None:  # noqa: ANN001
    assert_user_error(tmp_path, store, *case(tmp_path), run=run_cli)


def test_evaluate_and_compare_errors_are_one_line(tmp_path: Path, store: dict[str, str]) -> None:
    result = run_entry("evaluate", "run=0123456789abcdef", *tracking_overrides(store))
    assert result.returncode == 2 and "neither a run directory nor a run id" in result.stderr
    result = run_entry("compare", *tracking_overrides(store))
    assert result.returncode == 2 and "no FINISHED runs" in result.stderr
    result = run_entry("evaluate", *tracking_overrides(store))
    assert result.returncode == 2 and result.stderr.strip() == "error: run is required (pass run=...)"
