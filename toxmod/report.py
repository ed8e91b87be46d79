"""``python -m toxmod.report``: a markdown report (table, PR curves, Pareto plot, paired bootstrap
tests) of the finished runs on one split, itself recorded as an MLflow run.

python -m toxmod.report                                  # the runs on the newest run's split
python -m toxmod.report runs=[id1,id2,id3] compare_pairs=[[id1,id2]] output=docs/report
"""

from __future__ import annotations

from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.report import report


@hydra.main(version_base="1.3", config_path="conf", config_name="report")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    report(cfg, HydraConfig.get().runtime.output_dir)


def main() -> Any:
    """Console entry point (``toxmod-report`` / ``python -m toxmod.report``)."""
    return run_entry_point("report", _hydra_main)


if __name__ == "__main__":
    main()
