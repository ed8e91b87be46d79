"""LoRA on a causal LM through the Lightning fine-tune path: only the adapters (and the new head) train,
and a LoRA run records its trainable and total parameters and reloads as a plain classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import JANITR_SLICE, compose_train
from toxmod.config import instantiate_component
from toxmod.data.schemes import MultiLabelScheme
from toxmod.models import FitContext, load_scorer

pytestmark = pytest.mark.slow  # neural training (a few steps of a tiny model)
LORA = ["model=llm/smollm2_135m_lora", "model.gguf_package=null", "model.max_length=48", "model.batch_size=8"]


def test_a_few_lora_steps_change_only_the_adapters_and_the_head(tiny_lm: Path) -> None:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    cfg = compose_train([*LORA, f"model.pretrained={tiny_lm}", "tracking=none"])
    scorer = instantiate_component(cfg.model, "model")
    texts = [f"free airdrop {i} claim now" if i % 2 else f"good morning {i}" for i in range(48)]
    targets = np.array([[i % 2, 1] for i in range(48)])
    context = FitContext(trainer={"max_steps": 4})
    scorer.fit(texts, targets, MultiLabelScheme(["scam", "topic_crypto"]), context)
    original = AutoModelForCausalLM.from_pretrained(tiny_lm).state_dict()
    adapters, head, frozen = [], [], 0
    for name, value in scorer.model.state_dict().items():
        if "lora_" in name:
            adapters.append((name, value))
        elif "score" in name:
            head.append(name)
        else:
            base = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(value, original[base]), f"{name} changed"
            frozen += 1
    assert frozen > 10 and head
    assert any(value.abs().sum() > 0 for name, value in adapters if "lora_B" in name)  # B starts at zero
    trainable = {n for n, p in scorer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "score" in n for n in trainable)


def test_a_lora_run_records_trainable_parameters_and_reloads_merged(tiny_lm: Path, tmp_path: Path) -> None:
    from toxmod.stages.train import train

    cfg = compose_train(
        [*LORA, f"model.pretrained={tiny_lm}", *JANITR_SLICE, "tracking=none", "hardware.threads=1",
         "trainer.max_steps=6", "bootstrap=0", "evaluate_splits=[holdout]"]
    )  # fmt: skip
    result = train(cfg, tmp_path / "run")
    metrics = result.metrics
    assert 0 < metrics["model_trainable_parameters"] < 0.5 * metrics["model_parameters"]
    reopened = load_scorer(result.run_dir / "model")
    assert not hasattr(reopened.model, "peft_config")  # adapters merged: a plain sequence classifier
    holdout = pd.read_parquet(result.run_dir / "predictions" / "holdout.parquet")
    frame = pd.read_csv(cfg.data.path, usecols=["id", "text"]).astype({"id": str}).set_index("id")
    texts = frame.loc[holdout["id"].astype(str).head(8), "text"].fillna("").tolist()
    stored = holdout[["score/scam", "score/topic_crypto"]].to_numpy()[:8]
    assert np.abs(reopened.predict_scores(texts) - stored).max() < 1e-5
