"""A transformer run exported to ONNX (fp32 and dynamically quantized int8), scored by ONNX Runtime.

``OnnxScorer`` is a model kind like any other: ``fit`` does not train, it exports the source run's
network (handed over by the train stage, like an ensemble's members), quantizes it, and checks
on valid that the exported model scores as the source does (the parity gate: max |score
difference| per format, and the share of valid texts whose decisions flip at the source run's
thresholds). Thresholds, holdout metrics and the run record then come from the train stage, so
the int8 model gets its own thresholds fitted on calib.

The saved model folder holds ``model.onnx`` (fp32), ``model.int8.onnx``, the tokenizer and
``scorer.json`` (which file is scored, the label scheme, opset). Opening it reads the graph and
the tokenizer files; nothing in it is executed as Python.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text

from toxmod.data.schemes import LabelScheme
from toxmod.environment import cpu
from toxmod.errors import ConfigError, DamagedFileError, ToxmodError
from toxmod.hardware import CPU, HardwareSettings
from toxmod.models.base import FitContext, Scorer, artifact_size_bytes
from toxmod.models.capabilities import BuiltFromRuns, OnDevice
from toxmod.models.onnx_export import export_encoder, quantization_format, quantize_int8
from toxmod.models.temperature import Temperatures, link_for
from toxmod.models.token_batches import load_fast_tokenizer, scoring_batches
from toxmod.progress import console, scoring_progress, styled, warn

FORMATS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"
# A lone int8 batch of fewer padded tokens runs on one thread: splitting its small integer matrices
# costs more than it saves (a 4-layer student on 2 cores: 1 thread faster up to ~64 tokens, 2 from
# ~96; benchmarks/student_speed.py prints both by length). fp32's heavier products gain from 2 threads.
ONE_THREAD_TOKENS = {"int8": 96, "fp32": 0}
TEMPERATURES_FILE = "source_calibration.json"  # a calibrated source's temperatures, on the logits


class ParityError(ToxmodError):
    """The exported model does not score as its source does (exit 1: the command ran, the gate failed)."""

    exit_code = 1


@dataclass(frozen=True)
class Parity:
    """How one exported format scores valid against the source model."""

    max_abs_diff: float
    flip_rate: float  # share of texts with any decision changed at the source thresholds
    texts: int


class OnnxScorer(Scorer, OnDevice, BuiltFromRuns):
    """An exported transformer scored by an ONNX Runtime ``InferenceSession`` on the CPU."""

    kind = "onnx"

    def __init__(
        self,
        source: str | None = None,
        source_checkpoint: str | None = None,
        score_with: str = "int8",
        opset: int = 17,
        quantize: bool = True,
        per_channel: bool = True,
        reduce_range: bool | str = "auto",
        max_abs_diff_fp32: float = 1e-4,
        max_flip_rate_int8: float = 0.01,
        allow_parity_failure: bool = False,
        source_thresholds: Mapping[str, float] | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        batch_tokens: int = 512,
        parameters: int | None = None,
        quantization: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.source_checkpoint = source_checkpoint  # step-<n>: a checkpoint the source run kept
        self.score_with = score_with
        self.opset = int(opset)
        self.quantize = bool(quantize)
        self.per_channel = bool(per_channel)
        if reduce_range not in (True, False, "auto"):
            raise ConfigError(f"export.reduce_range={reduce_range!r}; expected true, false or auto")
        self.reduce_range = reduce_range
        self.quantization = dict(quantization or {})  # the chosen format and the CPU parity ran on
        self.max_abs_diff_fp32 = float(max_abs_diff_fp32)
        self.max_flip_rate_int8 = float(max_flip_rate_int8)
        self.allow_parity_failure = bool(allow_parity_failure)
        self.source_thresholds = dict(source_thresholds or {})
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.batch_tokens = int(batch_tokens)  # a scoring batch's padded tokens (rows x longest), at most
        self.parameters = parameters
        self.directory: Path | None = None  # where the .onnx files and the tokenizer are
        self.tokenizer: Any = None
        self.temperatures: Temperatures | None = None  # a calibrated source's, applied to the logits
        self.threads = CPU.threads
        self._source_model: Scorer | None = None
        self._sessions: dict[str, Any] = {}
        self._pool: ThreadPoolExecutor | None = None  # runs batches side by side (``_scores``)
        self._temporary = False  # ``directory`` is fit's temporary folder

    def params(self) -> dict[str, Any]:
        return {
            "score_with": self.score_with,
            "opset": self.opset,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "batch_tokens": self.batch_tokens,
            "parameters": self.parameters,
            "quantization": self.quantization,
        }

    # -- export (fit) ---------------------------------------------------------------------------

    def check_settings(self, scheme: LabelScheme, context: FitContext) -> None:
        if not self.source:
            raise ConfigError("model.source is required: the transformer run to export (run dir or id)")
        if self.score_with not in FORMATS:
            raise ConfigError(f"export.score_with={self.score_with!r}; expected one of {list(FORMATS)}")
        if self.score_with == "int8" and not self.quantize:
            raise ConfigError("export.score_with=int8 needs export.quantize=true")
        for key in ("max_abs_diff_fp32", "max_flip_rate_int8"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"export.{key}={getattr(self, key)}: expected a number >= 0")

    def fit_announcement(self, name: str, train_rows: int, dataset: str) -> Text:
        formats = "fp32 + int8" if self.quantize else "fp32"
        return styled("exporting", f" {self.source} to ONNX ({formats}, opset {self.opset}) as {name} ...")

    def member_runs(self) -> list[str]:
        return [str(self.source)] if self.source else []

    def member_checkpoint(self) -> str | None:
        return self.source_checkpoint

    def attach_members(self, members: Sequence[Scorer]) -> None:
        (source,) = members
        inner = getattr(source, "inner", None)  # calibration=temperature: the network inside
        network = inner if inner is not None else source
        if not hasattr(network, "encoder") or getattr(network, "model", None) is None:
            raise ConfigError(
                f"model.source={self.source}: a {network.kind} model; ONNX export covers transformer runs"
            )
        self._source_model = source
        self.temperatures = getattr(source, "temperatures", None) if inner is not None else None

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> OnnxScorer:
        """Export and quantize the source, then hold both formats to the parity limits on valid."""
        if self._source_model is None:
            raise ConfigError("model=onnx: no source attached (the train stage loads model.source)")
        source = self._source_model
        network: Any = getattr(source, "inner", None) or source
        self.scheme = scheme
        self.max_length = int(network.encoder.max_length)
        self.parameters = network.parameter_count
        self.directory = Path(tempfile.mkdtemp(prefix="toxmod-onnx-"))  # until save() moves it
        self._temporary = True
        try:
            fp32, int8 = self.folder / FORMATS["fp32"], self.folder / FORMATS["int8"]
            export_encoder(network.model, network.tokenizer, self.max_length, fp32, self.opset)
            if self.quantize:
                here = cpu()
                self.quantization = {
                    **quantization_format(self.reduce_range, here["isa"], platform.machine()),
                    "per_channel": self.per_channel,
                    "cpu": here["model"],
                }
                quantize_int8(fp32, int8, self.per_channel, bool(self.quantization["reduce_range"]))
            network.tokenizer.save_pretrained(str(self.directory))
            # scored (also in the parity check) with the tokenizer a saved export loads
            self.tokenizer = load_fast_tokenizer(self.directory)
            self._sessions = {}
            self.fit_report.metrics.update(self._parity_gate(source, context))
        except BaseException:  # a failed gate, Ctrl-C, a full disk: no export folder is left behind
            self._sessions = {}
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        return self

    def _parity_gate(self, source: Scorer, context: FitContext | None) -> dict[str, float]:
        validation = context.validation if context else None
        if validation is None or not len(validation.texts):
            raise ConfigError("the export's parity check scores valid, and valid is empty")
        texts = list(validation.texts)
        reference = source.predict_scores(texts)
        formats = ["fp32", "int8"] if self.quantize else ["fp32"]
        parity = {name: self._parity(reference, self._scores(texts, name)) for name in formats}
        metrics: dict[str, float] = {"export/opset": float(self.opset), "export/parity_texts": len(texts)}
        for name, result in parity.items():
            metrics[f"export/{name}_max_abs_diff"] = result.max_abs_diff
            metrics[f"export/{name}_flip_rate"] = result.flip_rate
            metrics[f"export/{name}_size_mb"] = (self.folder / FORMATS[name]).stat().st_size / 1e6
        shown = "; ".join(
            f"{name} max |score difference| {r.max_abs_diff:.3g}, {r.flip_rate:.2%} of decisions flipped"
            for name, r in parity.items()
        )
        console.print(f"parity on {len(texts)} valid texts: {shown}", soft_wrap=True)
        failures = []
        if parity["fp32"].max_abs_diff > self.max_abs_diff_fp32:
            failures.append(
                f"fp32 max |score difference| {parity['fp32'].max_abs_diff:.3g} > "
                f"export.max_abs_diff_fp32={self.max_abs_diff_fp32:g}"
            )
        # the int8 gate holds the format that is shipped: an fp32 export reports int8's numbers only
        if (
            self.score_with == "int8"
            and "int8" in parity
            and parity["int8"].flip_rate > self.max_flip_rate_int8
        ):
            failures.append(
                f"int8 flips the decisions of {parity['int8'].flip_rate:.2%} of valid texts > "
                f"export.max_flip_rate_int8={self.max_flip_rate_int8:g} "
                f"(max |score difference| {parity['int8'].max_abs_diff:.3g})"
            )
        if failures:
            message = f"export parity check on {len(texts)} valid texts failed: " + "; ".join(failures)
            if not self.allow_parity_failure:
                raise ParityError(message + " (export.allow_parity_failure=true to keep it anyway)")
            warn(message + " (kept: export.allow_parity_failure=true)")
        return metrics

    def _parity(self, reference: np.ndarray, exported: np.ndarray) -> Parity:
        difference = float(np.abs(exported - reference).max()) if len(reference) else 0.0
        if self.source_thresholds:
            names = self.label_scheme.decision_names
            missing = [name for name in names if name not in self.source_thresholds]
            if missing:
                raise ConfigError(f"model.source_thresholds has no threshold for {missing}")
            cut = np.asarray([self.source_thresholds[name] for name in names])[None, :]
            before = self.label_scheme.decision_scores(reference) >= cut
            after = self.label_scheme.decision_scores(exported) >= cut
            flip_rate = float(np.any(before != after, axis=1).mean())
        else:
            flip_rate = float("nan")
        return Parity(difference, flip_rate, len(reference))

    # -- scoring --------------------------------------------------------------------------------

    def place_on(self, hardware: HardwareSettings) -> None:
        """ONNX Runtime on the CPU with ``hardware.threads`` threads."""
        if int(hardware.threads) != self.threads:
            self.threads = int(hardware.threads)
            self._sessions = {}
            self._close_pool()

    def session(self, name: str, threads: int | None = None) -> Any:
        """The format's session, ``threads`` intra-op threads (default: the scorer's)."""
        threads = self.threads if threads is None else threads
        key = f"{name}/{threads}"
        if key not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION)
            path = self.folder / FORMATS[name]
            try:
                self._sessions[key] = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:  # onnxruntime raises its own exception types for bad files
                reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else repr(error)
                raise DamagedFileError(f"{path}: not a readable ONNX model ({reason})") from None
        return self._sessions[key]

    def _batch_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="toxmod-onnx")
        return self._pool

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _scores(self, texts: Sequence[str], name: str) -> np.ndarray:
        """Logits batch by batch: several batches side by side on one thread each (small matrices
        scale poorly across intra-op threads; whole batches do not), one long batch on all the threads,
        one short batch on one. A batch's logits do not depend on the threads it runs on (tested)."""
        batches = scoring_batches(self.tokenizer, texts, self.max_length, self.batch_size, self.batch_tokens)
        logits = np.empty((len(texts), len(self.label_scheme.output_names)), dtype=np.float64)
        side_by_side = self.threads > 1 and len(batches) > 1
        short = len(batches) == 1 and batches[0][1].size < ONE_THREAD_TOKENS[name]
        session = self.session(name, threads=1 if side_by_side or short else None)

        def run(batch: tuple[list[int], np.ndarray, np.ndarray]) -> np.ndarray:
            _, input_ids, attention_mask = batch
            return session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]

        results = self._batch_pool().map(run, batches) if side_by_side else map(run, batches)
        with scoring_progress(len(texts), show=len(batches) > 20) as advance:
            for (rows, _, _), batch_logits in zip(batches, results):
                logits[rows] = batch_logits
                advance(len(rows))
        if self.temperatures is not None:
            logits = self.temperatures.apply_to_logits(logits)
        return link_for(self.label_scheme).to_scores(logits.astype(np.float32)).astype(np.float64)

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        assert self.scheme is not None and self.directory is not None, "predict_scores() before fit()/load()"
        return self._scores(list(texts), self.score_with)

    @property
    def parameter_count(self) -> int | None:
        return self.parameters

    def run_tags(self) -> dict[str, str]:
        """The int8 format and why, and the instruction sets its parity gate ran on."""
        q = self.quantization
        if not q:
            return {}
        bits = "7-bit" if q.get("reduce_range") else "8-bit"
        layout = "per-channel" if q.get("per_channel") else "per-tensor"
        return {
            "export.int8_format": f"{bits} {layout} ({q.get('why')})",
            "export.parity_isa": str(q.get("measured_on_isa")),
        }

    @property
    def neural_models(self) -> int:
        return 1

    def size_bytes(self, directory: Path) -> int:
        """What scoring needs: the scored graph and the tokenizer (not the other format)."""
        other = [FORMATS[name] for name in FORMATS if name != self.score_with]
        return artifact_size_bytes(directory) - sum(
            (directory / name).stat().st_size for name in other if (directory / name).is_file()
        )

    # -- persistence ----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        """Where the graphs and the tokenizer are (fit's temporary folder, then the saved model's)."""
        if self.directory is None:
            raise RuntimeError("an ONNX model has no files before fit() or load()")
        return self.directory

    def _save_weights(self, directory: Path) -> None:
        if self.folder.resolve() != directory.resolve():
            exported = self.folder
            for path in exported.iterdir():
                shutil.copy2(path, directory / path.name)
            if self._temporary:  # fit's folder: the files live on in the saved model
                shutil.rmtree(exported, ignore_errors=True)
                self.directory, self._sessions, self._temporary = directory, {}, False
        if self.temperatures is not None:
            self.temperatures.save(directory / TEMPERATURES_FILE)

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        scored = directory / FORMATS.get(self.score_with, "?")
        if self.score_with not in FORMATS or not scored.is_file():
            raise DamagedFileError(f"{scored}: missing (scorer.json scores with {self.score_with!r})")
        self.directory = directory
        self.tokenizer = load_fast_tokenizer(directory)
        path = directory / TEMPERATURES_FILE
        self.temperatures = Temperatures.load(path) if path.is_file() else None
        self._sessions = {}
        measured = self.quantization.get("measured_on_isa")
        here = ",".join(cpu()["isa"])
        if self.score_with == "int8" and measured is not None and measured != here:
            warn(
                f"{scored}: its int8 parity was measured on a CPU with {measured or 'no listed ISA'}; "
                f"this CPU has {here or 'none of them'}: int8 kernels differ by instruction set, re-run "
                "the export here to check its decisions"
            )
