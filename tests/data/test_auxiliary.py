"""Auxiliary (training-only) targets: parsing, selection by train support, errors, real janitr tags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers import compose_train
from toxmod.config import spec_of
from toxmod.data import build_dataset
from toxmod.data.auxiliary import AuxiliaryTargets, auxiliary_settings, read_auxiliary
from toxmod.data.datasets import _binary_column
from toxmod.errors import ConfigError, DataError
from toxmod.spec import DataSpec

# Upstream's scam bucket (PROVENANCE.md): the `scam` label is 1 exactly when one of these tags is.
SCAM_BUCKET = [
    "scam",
    "crypto_scam",
    "phishing",
    "malware",
    "fake_support",
    "recovery_scam",
    "job_scam",
    "romance_scam",
    "impersonation",
    "account_compromise",
    "spam",
    "reply_spam",
    "dm_spam",
    "promo",
    "affiliate",
    "lead_gen",
    "engagement_bait",
    "follow_train",
    "giveaway",
    "bot",
]


def test_tags_and_binary_columns_are_read_in_a_fixed_order() -> None:
    frame = pd.DataFrame({"tags": ["b|a", "a", " ", "c | b"], "flag": [1, 0, 0, 1]})
    settings = {"tags_column": "tags", "separator": "|", "columns": ["flag"], "exclude": ["c"]}
    auxiliary = read_auxiliary(frame, settings, _binary_column, "test frame")
    assert auxiliary.names == ["a", "b", "flag"]
    np.testing.assert_array_equal(auxiliary.values, [[1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 1, 1]])


def test_supported_keeps_tags_with_enough_positives() -> None:
    auxiliary = AuxiliaryTargets(["a", "b", "c"], np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]]))
    kept = auxiliary.supported(2)
    assert kept.names == ["a"] and kept.values.tolist() == [[1], [1], [1]]
    assert auxiliary.subset(np.array([2])).values.tolist() == [[1, 1, 0]]


def test_janitr_raw_tags_refine_the_scam_bucket() -> None:
    data = build_dataset(
        spec_of(DataSpec, compose_train(["data=janitr"]).data)
    )  # janitr.yaml sets data.auxiliary
    auxiliary = data.auxiliary
    assert auxiliary is not None and len(auxiliary) == len(data)
    assert {"promo", "spam", "phishing", "topic_news"} <= set(auxiliary.names)
    assert not {"clean", "topic_crypto"} & set(auxiliary.names)
    assert auxiliary.values[:, auxiliary.names.index("promo")].sum() == 359  # PROVENANCE.md
    scam = data.targets[:, data.scheme.output_names.index("scam")]
    bucket = [auxiliary.names.index(tag) for tag in SCAM_BUCKET if tag in auxiliary.names]
    assert len(bucket) == 13  # of the 20 bucket tags, 13 occur
    np.testing.assert_array_equal(auxiliary.values[:, bucket].any(axis=1), scam == 1)
    train = data.subset(data.given_splits == "train").auxiliary.supported(20)
    assert len(train.names) == 19 and "promo" in train.names and "bot" not in train.names  # bot: 18


def test_auxiliary_errors_name_the_key() -> None:
    with pytest.raises(DataError, match=r"column 'tagz' \(data.auxiliary.tags_column\) not found"):
        build_dataset(
            spec_of(DataSpec, compose_train(["data=janitr", "data.auxiliary.tags_column=tagz"]).data)
        )
    with pytest.raises(ConfigError, match=r"data.auxiliary has unknown keys \['min_count'\]"):
        auxiliary_settings({"tags_column": "labels", "min_count": 3})
    with pytest.raises(ConfigError, match="needs data.auxiliary.tags_column or data.auxiliary.columns"):
        auxiliary_settings({"separator": "|"})
    with pytest.raises(DataError, match=r"label column 'labels' has \d+ values outside \{0, 1\}"):
        build_dataset(
            spec_of(DataSpec, compose_train(["data=janitr", "data.auxiliary.columns=[labels]"]).data)
        )
