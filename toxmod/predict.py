"""``python -m toxmod.predict run=<run> input=<file|-> [output=<file|->]``: score new texts.

One JSON line per text on stdout (or into ``output``); the summary goes to stderr.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, hardware_of, instantiate_component, run_entry_point, spec_of
from toxmod.errors import ConfigError
from toxmod.hardware import apply_threads
from toxmod.progress import notes_console
from toxmod.runs.opening import opening_from_config
from toxmod.spec import PathsSpec, PredictSpec
from toxmod.stages.predict import Predictor, PredictSettings, predict_file


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    hardware = hardware_of(cfg.hardware)
    apply_threads(hardware)
    store = instantiate_component(cfg.tracking, "tracking").store()
    cache = spec_of(PathsSpec, cfg.paths).downloads
    opening = opening_from_config(cfg)
    predictor = Predictor.open(
        str(cfg.run), store, cache, bool(cfg.allow_pickle), hardware, opening, cfg.get("checkpoint")
    )
    settings = PredictSettings(str(cfg.input), str(cfg.output), spec_of(PredictSpec, cfg.predict))
    try:
        if cfg.engine == "ray":
            from toxmod.stages.predict_ray import score_with_ray

            address = cfg.ray.address
            summary = score_with_ray(predictor, settings, opening, address, int(cfg.ray.workers))
        elif cfg.engine == "local":
            summary = predict_file(predictor, settings)
        else:
            raise ConfigError(f"engine={cfg.engine}: expected local or ray")
    except BrokenPipeError:  # the reader went away (`... | head -1`): stop quietly, as a pipe should
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at interpreter exit
        sys.exit(0)
    rate = summary.scored / summary.seconds if summary.seconds else 0.0
    reported = f"; {summary.reported} reported (blank or over predict.max_chars)" if summary.reported else ""
    notes_console.print(
        f"scored {summary.scored} texts in {summary.seconds:.1f} s ({rate:.0f} texts/s){reported}"
        + ("" if summary.output == "-" else f" -> {summary.output}")
    )


def main() -> Any:
    """Console entry point (``toxmod-predict`` / ``python -m toxmod.predict``)."""
    return run_entry_point("predict", _hydra_main)


if __name__ == "__main__":
    main()
