"""Where a causal LM's weights come from, offline first: a local folder, the GGUF file of a weights
package converted once into a plain HF folder, else the hub name through the HF cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import torch

from toxmod.errors import ConfigError


class WeightSettings(Protocol):
    """Where the weights are said to be (``HFSettings`` of the hf backend, the LoRA encoder's)."""

    @property
    def pretrained(self) -> str | None: ...
    @property
    def gguf_package(self) -> str | None: ...
    @property
    def gguf_package_model(self) -> str | None: ...
    @property
    def cache_dir(self) -> str | None: ...
    @property
    def local_files_only(self) -> bool: ...


def resolve_llm_weights(settings: WeightSettings) -> str:
    """A local folder with the weights: ``pretrained`` when it is one; the GGUF package's weights
    (when it holds ``pretrained``) converted once into ``cache_dir``; else the hub name through the HF
    cache (or the Hub, online)."""
    from toxmod.models.transformer.backbones import resolve_pretrained

    if settings.pretrained and Path(settings.pretrained).expanduser().is_dir():
        return str(Path(settings.pretrained).expanduser().resolve())
    holds = settings.gguf_package_model
    package = settings.gguf_package if settings.pretrained in (None, holds) else None
    if package and importlib.util.find_spec(package) is not None:
        return str(converted_gguf(package, Path(settings.cache_dir or "cache")))
    return resolve_pretrained(settings.pretrained, local_only=settings.local_files_only)


def converted_gguf(package: str, cache_dir: Path) -> Path:
    """The GGUF file inside pip package ``package`` as a plain HF folder (float32 safetensors), converted
    once under a lock (transformers parses GGUF slowly; the folder reloads in about a second)."""
    from toxmod.files import file_lock

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"model.gguf_package={package}: no .gguf file in {folder}")
    gguf = files[0]
    target = cache_dir / "llm_weights" / f"{gguf.stem}-{gguf.stat().st_size}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").is_file():
            return target
        _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toxmod.progress import console

    console.print(f"converting {gguf.name} into {target} once (GGUF parsing takes a while) ...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):  # dequantized weights save as a plain model
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
