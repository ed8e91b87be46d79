"""``python -m toxmod.pretrain model=minilm [pretrain.corpus=train_split|<data config>|<file>]``: DAPT.

Continues masked-LM training of an encoder on unlabeled domain text (the DAPT stage); fine-tune
from the result with ``python -m toxmod.train model=minilm model.init_from=<printed directory>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.pretrain import run_pretraining


@hydra.main(version_base="1.3", config_path="conf", config_name="pretrain")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    hydra_config = HydraConfig.get()
    run_pretraining(cfg, Path(hydra_config.runtime.output_dir), list(hydra_config.overrides.task))


def main() -> Any:
    """Console entry point (``toxmod-pretrain`` / ``python -m toxmod.pretrain``)."""
    return run_entry_point("pretrain", _hydra_main)


if __name__ == "__main__":
    main()
