"""Which runs' numbers come from another environment than the rest (library versions, instruction
sets): ``compare``, ``report`` and ``select`` mark them, so an environment difference is not read as a
model difference. Each run carries its environment as ``env.*`` tags (``toxmod.environment``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from toxmod.runs.store import StoredRun

FINGERPRINT = "env.fingerprint"
# env.* tags that describe numbers' environment (the rest -- os, cpu model, threads -- are context)
_CONTEXT = ("env.fingerprint", "env.os", "env.cpu", "env.threads", "env.python")


def environment_notes(runs: Sequence[StoredRun]) -> dict[str, str]:
    """``{run_id: note}``: ``""`` for runs in the most common numeric environment, else what differs
    from it (``env differs: torch 2.13.0 vs 2.14.1; isa avx2 vs avx2,avx512f``); ``env unknown`` for
    a run that recorded none."""
    counts = Counter(run.tags.get(FINGERPRINT) for run in runs if run.tags.get(FINGERPRINT))
    if not counts:
        return {run.run_id: "" for run in runs}
    common = counts.most_common(1)[0][0]
    reference = next(run for run in runs if run.tags.get(FINGERPRINT) == common)
    notes = {}
    for run in runs:
        fingerprint = run.tags.get(FINGERPRINT)
        if fingerprint is None:
            notes[run.run_id] = "env unknown"
        elif fingerprint == common:
            notes[run.run_id] = ""
        else:
            notes[run.run_id] = "env differs: " + "; ".join(_differences(run, reference))
    return notes


def _differences(run: StoredRun, reference: StoredRun) -> list[str]:
    keys = sorted(
        k
        for k in {*run.tags, *reference.tags}
        if k.startswith("env.") and k not in _CONTEXT and run.tags.get(k) != reference.tags.get(k)
    )
    found = [f"{k.removeprefix('env.')} {run.tags.get(k, '-')} vs {reference.tags.get(k, '-')}" for k in keys]
    return found or ["numeric settings"]
