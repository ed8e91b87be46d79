"""Writing a network as ONNX graphs: the fp32 export (TorchScript exporter, dynamic batch and sequence
axes), the dynamically quantized int8 copy (which format for which CPU, and why) and an op count."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toxmod.environment import X86_MACHINES
from toxmod.models.token_batches import scoring_batches

INPUTS = ("input_ids", "attention_mask")


def export_encoder(model: Any, tokenizer: Any, max_length: int, path: Path, opset: int) -> None:
    """The classifier's logits as an ONNX graph with dynamic batch and sequence axes."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, network: Any) -> None:
            super().__init__()
            self.network = network

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.network(input_ids=input_ids, attention_mask=attention_mask).logits

    (_, ids, mask), *_ = scoring_batches(tokenizer, ["an example text", "another"], max_length, 2)
    wrapper = Logits(model.to("cpu").eval()).eval()
    axes = {"batch": 0, "sequence": 1}
    # The tracer warns about shape checks it freezes (padding, causal masks) that are constant for an
    # encoder; the parity check on valid, at every batch shape, is what shows the graph is right.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(path),
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {i: n for n, i in axes.items()},
                "attention_mask": {i: n for n, i in axes.items()},
                "logits": {0: "batch"},
            },
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def quantization_format(reduce_range: bool | str, isa: Sequence[str], machine: str) -> dict[str, Any]:
    """The int8 format for this CPU: 8-bit weights where the CPU multiplies u8 x s8 without saturating
    (x86 with VNNI, or not x86), 7-bit (``reduce_range``) on x86 without VNNI (AVX2 only), unless
    ``reduce_range`` is given as true or false. Recorded with the export (``scorer.json``, the run's
    tags) beside the instruction sets the parity gate was measured on."""
    x86 = machine in X86_MACHINES
    vnni = [flag for flag in VNNI_FLAGS if flag in isa]
    if isinstance(reduce_range, bool):
        chosen, why = reduce_range, "export.reduce_range"
    elif x86 and not vnni:
        chosen, why = True, "x86 without VNNI: full-range u8 x s8 products saturate"
    else:
        where = f"VNNI ({','.join(vnni)})" if vnni else machine
        chosen, why = False, f"{where}: 8-bit weights do not saturate"
    return {"reduce_range": chosen, "why": why, "measured_on_isa": ",".join(isa), "machine": machine}


def quantize_int8(source: Path, target: Path, per_channel: bool, reduce_range: bool) -> None:
    """Dynamic int8 quantization of the weights (activations quantized at run time), ONNX Runtime's.

    ``reduce_range``: 7-bit weights. On x86 CPUs without VNNI (AVX2 only) the u8 x s8 integer
    multiply-add saturates with full-range weights. ``per_channel``: a scale per output channel. On
    janitr valid (share of decisions flipped vs torch, student h256 / MiniLM): 8-bit per-tensor
    4.0% / 2.8%, 7-bit per-tensor 0.7% / 4.7%, 7-bit per-channel 0.5% / 0.7%.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()  # the quantizer suggests pre-processing on the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
        )
    finally:
        quiet.setLevel(level)


def count_ops(path: Path) -> dict[str, int]:
    """Node counts by operator type (e.g. ``MatMulInteger`` in a quantized graph)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
