"""Data: reading files, label schemes and validated datasets."""

from toxmod.data.datasets import SPLIT_NAMES, LabeledDataset, build_dataset
from toxmod.data.schemes import LabelScheme, LevelsScheme, MultiLabelScheme, scheme_from_description

__all__ = [
    "SPLIT_NAMES",
    "LabeledDataset",
    "LabelScheme",
    "LevelsScheme",
    "MultiLabelScheme",
    "build_dataset",
    "scheme_from_description",
]
