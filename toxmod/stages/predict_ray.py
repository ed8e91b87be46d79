"""``engine=ray``: the local engine's records, computed by Ray Data on a local instance or a cluster.

``read_parquet`` -> ``map_batches`` with one opened model per worker actor -> ``write_parquet``. The
actors open the run from its folder (locate a run id first: the driver downloads it), so on several
machines the folder must be on storage every worker reads. The output is a folder of Parquet files
with the local engine's columns and records, keyed by id (rows come in the order Ray's blocks finish),
renamed into place when complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from toxmod.errors import ConfigError
from toxmod.models import Opening
from toxmod.stages.predict import Predictor, PredictSettings, PredictSummary, batch_records
from toxmod.stages.predict_io import PARQUET, Columns, flat_record, is_uri, record_schema, scored_columns


class ScoreBatches:
    """A Ray Data actor: the run opened once, then each Arrow batch of rows scored into records."""

    def __init__(
        self,
        run_dir: str,
        opening: Opening | None,
        max_chars: int,
        columns: Columns,
        schema: Any,
        checkpoint: str | None = None,
    ) -> None:
        self.predictor = Predictor.open(run_dir, opening=opening, checkpoint=checkpoint)
        self.max_chars, self.columns, self.schema = max_chars, columns, schema

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        values = batch.to_pydict()
        texts = values[self.columns.text]
        ids = values[self.columns.id]
        rows = [(ids[i], texts[i], {k: values[k][i] for k in self.columns.keep}) for i in range(len(texts))]
        records = [flat_record(r) for r in batch_records(self.predictor, rows, self.max_chars)]
        return pa.Table.from_pylist(records, schema=self.schema)


def score_with_ray(
    predictor: Predictor,
    settings: PredictSettings,
    opening: Opening | None,
    address: str | None,
    workers: int,
) -> PredictSummary:
    """Score ``settings.input`` (Parquet) into the folder ``settings.output`` with ``workers`` actors,
    each opening ``predictor``'s run (the driver's copy gives only the output's columns)."""
    import time

    import pyarrow as pa
    import pyarrow.dataset as ds
    import ray

    if not (settings.input.endswith(PARQUET) and settings.output.endswith(PARQUET)) or is_uri(
        settings.output
    ):
        raise ConfigError(
            "engine=ray reads Parquet and writes a Parquet folder: input=<...>.parquet output=<path>.parquet"
        )
    start = time.perf_counter()
    # a local instance gets a CPU for reading beside the actors' (else the actors hold every CPU and
    # the read tasks that feed them never start)
    cpus = workers + 1 if address is None else None
    ray.init(
        address=address, num_cpus=cpus, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False
    )
    columns = settings.columns
    source = ds.dataset(settings.input, format="parquet")
    present = set(source.schema.names)
    if columns.text not in present:
        raise ConfigError(f"{settings.input}: no column {columns.text!r} (set predict.text_column)")
    if columns.id not in present:  # the local engine numbers rows; Ray's blocks do not know their place
        raise ConfigError(
            f"{settings.input}: engine=ray needs an id column ({columns.id!r}: predict.id_column)"
        )
    given = list(dict.fromkeys([columns.id, *columns.keep]))
    missing = [name for name in given if name not in present]
    if missing:
        raise ConfigError(f"{settings.input}: no column {missing[0]!r} (predict.keep_columns)")
    schema = record_schema(
        pa.schema([source.schema.field(name) for name in given]),
        scored_columns(predictor.scheme),
    )
    dataset = ray.data.read_parquet(settings.input, columns=list(dict.fromkeys([columns.text, *given])))
    scored = dataset.map_batches(
        ScoreBatches,
        fn_constructor_args=(
            str(predictor.run_dir),
            opening,
            settings.max_chars,
            columns,
            schema,
            predictor.checkpoint,
        ),
        batch_size=settings.chunk_size,
        batch_format="pyarrow",
        concurrency=workers,
        num_cpus=1,
    )
    final = Path(settings.output).expanduser()
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        scored.write_parquet(str(partial))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    written = ds.dataset(final, format="parquet").to_table(columns=["error"])["error"]
    reported = len(written) - written.null_count
    return PredictSummary(len(written) - reported, reported, time.perf_counter() - start, str(final))
