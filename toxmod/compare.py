"""``python -m toxmod.compare [split_sha256=...] [runs=[id1,id2]] [allow_mixed_splits=true]``.

A table of finished runs that share one split hash (the compare stage).
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.compare import compare


@hydra.main(version_base="1.3", config_path="conf", config_name="compare")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    return compare(cfg)


def main() -> Any:
    """Console entry point (``toxmod-compare`` / ``python -m toxmod.compare``)."""
    return run_entry_point("compare", _hydra_main)


if __name__ == "__main__":
    main()
