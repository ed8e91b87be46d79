"""Optuna searches as Hydra multiruns: the space, the study, each trial as a job, the summary."""
