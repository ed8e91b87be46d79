"""``python -m toxmod.evaluate run=<run id or run dir> [subset=holdout]``: re-score a finished run.

Exit code 1 when the recorded numbers are not reproduced.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    evaluation = evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))
    if evaluation.reproduced is False:
        sys.exit(1)
    return evaluation.metrics


def main() -> Any:
    """Console entry point (``toxmod-evaluate`` / ``python -m toxmod.evaluate``)."""
    return run_entry_point("evaluate", _hydra_main)


if __name__ == "__main__":
    main()
