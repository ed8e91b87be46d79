"""The train stage's named steps, in the order it runs them.

components (config only) -> members (optional) -> data -> teacher (optional) -> fit -> calibrate
(optional) -> score -> thresholds -> evaluate -> record. Each step is a module with typed inputs and
outputs; an optional step is switched by its config (``teacher.seeds``, ``teacher.run``,
``calibration``, ``plots``, ``latency``, ``log_pyfunc``) and returns nothing to add when it is off.
"""

STEPS = (
    "components",
    "members",
    "data",
    "teacher",
    "fit",
    "calibrate",
    "score",
    "evaluate",
    "record",
)
