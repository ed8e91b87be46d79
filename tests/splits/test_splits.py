"""Splits: stratification, de-duplication, freezing with hashes, verification and leakage checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import compose_train
from toxmod.config import spec_of
from toxmod.data import build_dataset
from toxmod.data.text import normalize_text
from toxmod.errors import SplitError
from toxmod.spec import DataSpec, SplitSpec
from toxmod.splits import prepare_split, read_split_folder, write_split_folder
from toxmod.splits.assign import group_assignment, stratified_assignment
from toxmod.splits.builders import stratified_split
from toxmod.splits.leakage import compare_with_previous, leakage_report

# sha256 of upstream Janitr's frozen ID lists (PROVENANCE.md: they match that folder's MANIFEST.json).
UPSTREAM_JANITR_PREFIXES = {"valid": "b2aba19f", "calib": "5c865452", "holdout": "11783c36"}
RATIOS = {"train": 0.6, "valid": 0.1, "calib": 0.05, "holdout": 0.25}


def janitr(*overrides: str):  # noqa: ANN201
    cfg = compose_train(["data=janitr", *overrides])
    return cfg, build_dataset(spec_of(DataSpec, cfg.data))


def test_normalize_text_folds_case_whitespace_urls_and_handles() -> None:
    assert normalize_text("Free  BTC @alice https://x.co/a\n") == normalize_text("free btc @bob http://y.io")


def test_stratified_assignment_keeps_label_proportions_and_is_deterministic() -> None:
    keys = np.array(["10"] * 300 + ["01"] * 600 + ["00"] * 100)
    first, second = stratified_assignment(keys, RATIOS, 7), stratified_assignment(keys, RATIOS, 7)
    assert (first == second).all()
    assert not (first == stratified_assignment(keys, RATIOS, 8)).all()
    for key, n in (("10", 300), ("01", 600), ("00", 100)):
        counts = {s: int(((keys == key) & (first == s)).sum()) for s in RATIOS}
        assert counts == {s: round(n * r) for s, r in RATIOS.items()}


def test_group_assignment_never_splits_a_group() -> None:
    groups = np.repeat(np.arange(200), 5).astype(str)
    assignment = group_assignment(groups, RATIOS, 0)
    for g in np.unique(groups):
        assert len(set(assignment[groups == g])) == 1
    share = {s: (assignment == s).mean() for s in RATIOS}
    assert all(abs(share[s] - RATIOS[s]) < 0.03 for s in RATIOS)


def test_janitr_frozen_split_reproduces_upstream_hashes(tmp_path: Path) -> None:
    cfg, data = janitr()
    split, report = prepare_split(spec_of(SplitSpec, cfg.split), data)
    manifest = write_split_folder(tmp_path / "split", data, split)
    for name, prefix in UPSTREAM_JANITR_PREFIXES.items():
        assert manifest["splits"][name]["sha256"].startswith(prefix)
    # janitr.yaml purges train rows whose text is in an evaluation split; evaluation splits are untouched.
    assert split.notes["purged_train_rows"] > 0 and not report["leaks"]
    assert manifest["splits"]["holdout"]["rows"] == 1069


def test_janitr_frozen_split_refuses_when_not_purged() -> None:
    cfg, data = janitr("split.on_leak=refuse")
    with pytest.raises(SplitError, match=r"leakage: .*\d+ holdout rows have a train text \(ids \d+") as error:
        prepare_split(spec_of(SplitSpec, cfg.split), data)
    assert "\n" not in str(error.value)
    allowed = compose_train(["split.on_leak=refuse", "split.allow_leakage=true"]).split
    split, report = prepare_split(spec_of(SplitSpec, allowed), data)
    assert report["leaks"] and report["blocking"]["train~holdout"] > 0


def test_frozen_folder_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    cfg, data = janitr()
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), data)
    folder = tmp_path / "frozen"
    manifest = write_split_folder(folder, data, split)
    again, read_manifest = read_split_folder(folder, data)
    assert read_manifest["split_sha256"] == manifest["split_sha256"]
    assert all((again.rows[n] == split.rows[n]).all() for n in split.rows)

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    (tampered / "calib.ids.txt").write_text((folder / "calib.ids.txt").read_text() + "extra\n")
    with pytest.raises(SplitError, match="sha256 of calib.ids.txt does not match"):
        read_split_folder(tampered, data)

    unknown = tmp_path / "unknown"
    shutil.copytree(folder, unknown)
    ids = (folder / "holdout.ids.txt").read_text().replace(split.ids(data, "holdout")[0], "not-an-id")
    (unknown / "holdout.ids.txt").write_text(ids)
    manifest_data = json.loads((unknown / "MANIFEST.json").read_text())
    from toxmod.splits.manifest import sha256_bytes, split_hash

    manifest_data["splits"]["holdout"]["sha256"] = sha256_bytes(ids.encode())
    manifest_data["split_sha256"] = split_hash({n: p["sha256"] for n, p in manifest_data["splits"].items()})
    (unknown / "MANIFEST.json").write_text(json.dumps(manifest_data))
    with pytest.raises(SplitError, match="1 IDs are not in data file"):
        read_split_folder(unknown, data)


def test_stratified_split_dedupes_and_has_no_leakage(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": [f"post number {i % 150}" if i < 300 else f"unique {i}" for i in range(600)],
            "y": [str(i % 2) for i in range(600)],
        }
    )
    path = tmp_path / "dupes.csv"
    frame.to_csv(path, index=False)
    data = build_dataset(
        spec_of(DataSpec, compose_train(["data=csv", f"data.path={path}", "data.label_columns=[y]"]).data)
    )
    split = stratified_split(data, RATIOS, seed=3)
    assert split.notes["deduplicated_rows"] == 150
    report = leakage_report(data, split)
    assert all(pair["normalized"] == 0 for pair in report["pairs"].values())


def test_leakage_report_counts_normalized_duplicates(tmp_path: Path) -> None:
    texts = ["Buy $BTC now https://a.io", "hello world", "gm frens", "BUY $btc NOW https://b.io", "other"]
    path = tmp_path / "leak.csv"
    pd.DataFrame(
        {
            "text": texts,
            "y": ["1", "0", "0", "1", "0"],
            "split": ["train", "train", "valid", "holdout", "calib"],
        }
    ).to_csv(path, index=False)
    cfg = compose_train(
        ["data=csv", f"data.path={path}", "data.label_columns=[y]", "data.split_column=split"]
    )
    data = build_dataset(spec_of(DataSpec, cfg.data))
    with pytest.raises(SplitError, match=r"1 holdout rows have a train text \(ids 3\)"):
        prepare_split(spec_of(SplitSpec, cfg.split), data)
    purged = compose_train(
        [
            "data=csv",
            f"data.path={path}",
            "data.label_columns=[y]",
            "data.split_column=split",
            "split.on_leak=purge_train",
        ]
    )
    split, report = prepare_split(spec_of(SplitSpec, purged.split), data)
    assert report["pairs"]["train~holdout"] == {"exact": 0, "normalized": 0, "example_ids": []}
    assert split.notes["purged_train_rows"] == 1


def test_new_split_is_checked_against_a_previous_one() -> None:
    _, data = janitr()
    old, new = stratified_split(data, RATIOS, seed=1), stratified_split(data, RATIOS, seed=2)
    comparison = compare_with_previous(data, new, old)
    assert sum(comparison["moved_ids"].values()) > 0
    assert comparison["new_train_texts_in_previous"]["holdout"] > 0
    assert compare_with_previous(data, old, old)["moved_ids"] == {}


def test_split_sample_is_stratified_seeded_and_a_split_of_its_own() -> None:
    from toxmod.splits import build_manifest

    cfg = compose_train(["data=jigsaw_levels"])
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    full, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    cfg.split.sample = {"calib": 300, "holdout": 500}
    sampled, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    again, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    assert (len(sampled.rows["calib"]), len(sampled.rows["holdout"])) == (300, 500)
    assert np.array_equal(sampled.rows["train"], full.rows["train"])  # train and valid untouched
    assert set(sampled.rows["holdout"]) <= set(full.rows["holdout"])
    assert np.array_equal(sampled.rows["holdout"], again.rows["holdout"])  # seeded
    levels = lambda rows: np.bincount(dataset.targets[rows], minlength=4) / len(rows)  # noqa: E731
    assert np.abs(levels(sampled.rows["holdout"]) - levels(full.rows["holdout"])).max() < 0.005
    hashes = {build_manifest(dataset, s)["split_sha256"] for s in (full, sampled, again)}
    assert len(hashes) == 2 and sampled.notes["sample"] == {"calib": 300, "holdout": 500, "seed": 0}
