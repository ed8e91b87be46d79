"""Stages: plain functions that take a composed config and return a result.

The ``python -m toxmod.<name>`` entry points only compose the config and call one of these; tests,
notebooks and benchmarks call them in-process.
"""
