"""``python -m toxmod.export run=<run>``: a transformer run as ONNX fp32 + int8, recorded as a new run.

python -m toxmod.export run=outputs/train/2026-01-01_10-00-00-000000
python -m toxmod.export run=<MLflow run id> export.score_with=fp32
"""

from __future__ import annotations

from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.export import export


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    export(cfg, HydraConfig.get().runtime.output_dir)


def main() -> Any:
    """Console entry point (``toxmod-export`` / ``python -m toxmod.export``)."""
    return run_entry_point("export", _hydra_main)


if __name__ == "__main__":
    main()
