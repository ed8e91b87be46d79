"""``python -m toxmod.split data=... [split.seed=...] [out=FOLDER] [previous=OLD]``: freeze a benchmark split.

Builds the split named by the ``split`` group (stratified by default: de-duplicated, stratified on the
label combination), runs the leakage check, and writes the ID lists, ``MANIFEST.json`` and
``leakage.json`` into ``out`` (the split stage).
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.split import freeze


@hydra.main(version_base="1.3", config_path="conf", config_name="split_cli")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    return freeze(cfg)


def main() -> Any:
    """Console entry point (``toxmod-split`` / ``python -m toxmod.split``)."""
    return run_entry_point("split_cli", _hydra_main)


if __name__ == "__main__":
    main()
