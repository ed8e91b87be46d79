"""``python -m toxmod.select``: rank finished runs by a valid metric, register the winner's pyfunc model in
the MLflow Model Registry and point the ``champion`` alias at it.

python -m toxmod.select metric=valid/scam/recall 'where="valid/scam/fpr<=0.02 and size_mb<=5"'
python -m toxmod.select sweep_id=2026-12-02_01-25-53-3f9a1c model_name=janitr
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.select import select


@hydra.main(version_base="1.3", config_path="conf", config_name="select")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    select(cfg)


def main() -> Any:
    """Console entry point (``toxmod-select`` / ``python -m toxmod.select``)."""
    return run_entry_point("select", _hydra_main)


if __name__ == "__main__":
    main()
