"""``hydra/sweeper=optuna_search``: a toxmod search (``search=<name>``) as a Hydra sweeper.

Thin by design: Hydra imports every plugin module when it scans for plugins, so this one imports
nothing heavy; the search itself lives in ``toxmod.stages.search``.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class OptunaSearchSweeper(Sweeper):
    """Asks Optuna for trials and hands each to the configured launcher as one job."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # none today: the search is declared under `search` (conf/search)
        self.config: Any = None
        self.hydra_context: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        from toxmod.stages.search.sweep import search_sweep

        return search_sweep(self.config, self.hydra_context.config_loader, self.launcher, arguments)
