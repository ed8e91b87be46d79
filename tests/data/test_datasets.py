"""Every shared-dataset config builds from the real files; counts match each PROVENANCE.md."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import DAVIDSON, compose_train
from toxmod.config import spec_of
from toxmod.data import build_dataset
from toxmod.errors import ConfigError, DataError
from toxmod.spec import DataSpec


def dataset_for(name: str, *overrides: str):  # noqa: ANN201
    return build_dataset(spec_of(DataSpec, compose_train([f"data={name}", *overrides]).data))


def test_janitr_is_multilabel_with_the_upstream_split() -> None:
    data = dataset_for("janitr")
    assert len(data) == 4277  # 4,281 rows minus the 4 with split "none"
    assert data.scheme.report_names == ["scam", "topic_crypto", "clean"]
    counts = dict(zip(*np.unique(data.given_splits, return_counts=True)))
    assert counts == {"train": 2566, "valid": 428, "calib": 214, "holdout": 1069}
    assert data.scheme.support(data.targets) == {"scam": 980, "topic_crypto": 2045, "clean": 2026}


def test_davidson_levels_follow_the_class_column() -> None:
    data = dataset_for("davidson")
    assert data.scheme.support(data.targets) == {"neither": 4163, "offensive": 19190, "hate": 1430}


def test_jigsaw_levels_mapping_rule() -> None:
    data = dataset_for("jigsaw_levels")
    frame = pd.read_csv(data.path, keep_default_na=False, dtype={"id": str})
    severe = frame[["severe_toxic", "threat", "identity_hate"]].any(axis=1)
    toxic = ~severe & frame.toxic.astype(bool) & (frame.obscene.astype(bool) | frame.insult.astype(bool))
    any_label = frame[["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]].any(axis=1)
    expected = {
        "safe": int((~any_label).sum()),
        "mild": int((any_label & ~severe & ~toxic).sum()),
        "toxic": int(toxic.sum()),
        "severe": int(severe.sum()),
    }
    assert expected["safe"] == 49961 and expected["severe"] == 2346  # PROVENANCE.md
    assert data.scheme.support(data.targets) == expected


def test_jigsaw_test_rows_are_the_holdout() -> None:
    data = dataset_for("jigsaw")
    assert (data.given_splits == "holdout").sum() == 4381
    assert data.scheme.support(data.targets)["toxic"] == 13328


def test_ruddit_scores_are_binned_into_levels() -> None:
    data = dataset_for("ruddit")
    # PROVENANCE.md: <=0: 3,408 · (0,0.25]: 1,274 · (0.25,0.5]: 569 · >0.5: 473
    assert data.scheme.support(data.targets) == {"safe": 3408, "mild": 1274, "toxic": 569, "severe": 473}
    assert data.groups is not None


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".csv.gz", ".jsonl.gz"])
def test_csv_config_reads_every_supported_format(tmp_path: Path, suffix: str) -> None:
    frame = pd.read_csv(DAVIDSON, dtype=str, keep_default_na=False).head(50)
    frame = frame.rename(columns={"tweet": "body"}).assign(
        hateful=(frame["class"] == "0").astype(int).astype(str)
    )
    path = tmp_path / f"slice{suffix}"
    if ".jsonl" in suffix:
        text = "\n".join(json.dumps(r) for r in frame.to_dict(orient="records")) + "\n"
        path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    data = dataset_for(
        "csv",
        f"data.path={path}",
        "data.text_column=body",
        "data.label_columns=[hateful]",
        "data.id_column='Unnamed: 0'",
    )
    assert len(data) == 50
    assert data.targets[:, 0].sum() == int((frame["class"] == "0").sum())


def test_csv_levels_scheme_with_a_level_column(tmp_path: Path) -> None:
    path = tmp_path / "levels.csv"
    pd.DataFrame({"text": ["a b", "c d", "e f"], "level": ["low", "high", "mid"]}).to_csv(path, index=False)
    data = dataset_for(
        "csv",
        f"data.path={path}",
        "data.scheme=levels",
        "data.label_column=level",
        "data.levels=[low,mid,high]",
    )
    assert data.targets.tolist() == [0, 2, 1]
    assert data.ids.tolist() == ["0", "1", "2"]


def test_max_rows_subsamples_reproducibly() -> None:
    first = dataset_for("janitr", "data.max_rows=300")
    second = dataset_for("janitr", "data.max_rows=300")
    assert len(first) == 300 and first.ids.tolist() == second.ids.tolist()


@pytest.mark.parametrize(
    ("frame", "overrides", "message"),
    [
        (
            {"body": ["x"], "y": ["1"]},
            ["data.label_columns=[y]"],
            "column 'text' (data.text_column) not found",
        ),
        (
            {"body": ["x"], "z": ["1"]},  # neither the text nor the label column: both named, one line
            ["data.label_columns=[y]"],
            "columns 'text' (data.text_column), 'y' (data.label_columns) not found",
        ),
        ({"text": ["x", " "], "y": ["1", "0"]}, ["data.label_columns=[y]"], "has 1 empty texts"),
        (
            {"text": ["x", "z"], "y": ["1", "yes"]},
            ["data.label_columns=[y]"],
            "values outside {0, 1}: ['yes']",
        ),
        (
            {"text": ["x", "z"], "y": ["1", "0"], "i": ["a", "a"]},
            ["data.label_columns=[y]", "data.id_column=i"],
            "duplicate IDs",
        ),
        (
            {"text": ["x", "z"], "lv": ["low", "top"]},
            ["data.scheme=levels", "data.label_column=lv", "data.levels=[low,high]"],
            "outside the levels",
        ),
    ],
)
def test_bad_data_raises_one_line_errors(
    tmp_path: Path, frame: dict, overrides: list[str], message: str
) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame(frame).to_csv(path, index=False)
    with pytest.raises(DataError) as error:
        dataset_for("csv", f"data.path={path}", *overrides)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(path) in str(error.value)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    pd.DataFrame({"text": ["x"], "y": ["1"]}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="data.scheme='tree'"):
        dataset_for("csv", f"data.path={path}", "data.scheme=tree", "data.label_columns=[y]")
    with pytest.raises(DataError, match="does not exist"):
        dataset_for("csv", f"data.path={tmp_path / 'missing.csv'}")


def test_every_problem_of_a_file_is_in_one_message(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": ["a", "", "b", "  ", "c", "d", "", "e"],
            "scam": ["0", "1", "0", "0", "2", "0", "1", "yes"],
        }
    )
    path = tmp_path / "own.csv"
    frame.to_csv(path, index=False)
    overrides = ["data=csv", f"data.path={path}", "data.label_columns=[scam]"]
    with pytest.raises(DataError) as raised:
        build_dataset(spec_of(DataSpec, compose_train(overrides).data))
    message = str(raised.value)
    assert "\n" not in message and "np.int64" not in message
    assert message.startswith(f"data file {path}: 2 problems: (1) text column 'text' has 3 empty texts")
    assert "(rows 1, 3, 6); drop them with data.drop_empty_texts=true" in message
    assert "(2) label column 'scam' has 2 values outside {0, 1}: ['2', 'yes'] (rows 4, 7)" in message

    # The suggestion works: the empty texts go (with a warning), the label problem is still named.
    with pytest.raises(DataError) as raised:
        build_dataset(spec_of(DataSpec, compose_train([*overrides, "data.drop_empty_texts=true"]).data))
    assert str(raised.value) == (
        f"data file {path}: label column 'scam' has 2 values outside {{0, 1}}: ['2', 'yes'] (rows 4, 7)"
    )
