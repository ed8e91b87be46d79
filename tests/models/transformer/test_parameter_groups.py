"""Optimizer parameter groups: weight-decay exclusions and layer-wise learning-rate decay."""

from __future__ import annotations

import pytest
import torch

from toxmod.errors import ConfigError
from toxmod.models.transformer.backbones import StudentArchitecture, build_classifier
from toxmod.models.transformer.parameter_groups import parameter_groups, scale_learning_rates
from toxmod.models.transformer.schedules import linear_warmup

pytestmark = pytest.mark.data_free

EXCLUDE = ("bias", "LayerNorm.weight")


def _tiny_bert(layers: int = 3) -> torch.nn.Module:
    architecture = StudentArchitecture(hidden=16, layers=layers, heads=2, intermediate=32, vocab_size=40)
    config = architecture.bert_config(2)
    return build_classifier(config, 2, pooling="cls")


def _lr_of(optimizer: torch.optim.Optimizer, parameter: torch.nn.Parameter) -> tuple[float, float]:
    for group in optimizer.param_groups:
        if any(p is parameter for p in group["params"]):
            return group["lr"], group["weight_decay"]
    raise AssertionError("parameter not in any group")


def test_layer_decay_scales_learning_rates_from_the_head_down() -> None:
    model = _tiny_bert(layers=3)
    groups = parameter_groups(model, EXCLUDE, layer_lr_decay=0.5)
    optimizer = scale_learning_rates(torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01))
    grouped = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len(list(model.parameters())) == len({id(p) for p in grouped})
    named = dict(model.named_parameters())
    expected = {
        "classifier.weight": (1e-3, 0.01),
        "bert.pooler.dense.weight": (1e-3, 0.01),
        "bert.encoder.layer.2.output.dense.weight": (5e-4, 0.01),
        "bert.encoder.layer.1.output.dense.bias": (2.5e-4, 0.0),
        "bert.encoder.layer.0.attention.output.LayerNorm.weight": (1.25e-4, 0.0),
        "bert.embeddings.word_embeddings.weight": (6.25e-5, 0.01),
    }
    for name, (lr, weight_decay) in expected.items():
        assert _lr_of(optimizer, named[name]) == (pytest.approx(lr), weight_decay), name


def test_the_schedule_keeps_the_layer_ratios_and_decay_one_is_a_single_rate() -> None:
    model = _tiny_bert(layers=2)
    optimizer = scale_learning_rates(torch.optim.AdamW(parameter_groups(model, EXCLUDE, 0.8), lr=1e-3))
    scheduler = linear_warmup(optimizer, total_steps=10, warmup_ratio=0.2)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    head = _lr_of(optimizer, model.classifier.weight)[0]
    embeddings = _lr_of(optimizer, model.bert.embeddings.word_embeddings.weight)[0]
    assert 0 < head < 1e-3 and embeddings == pytest.approx(head * 0.8**3)
    flat = scale_learning_rates(torch.optim.AdamW(parameter_groups(model, EXCLUDE, 1.0), lr=1e-3))
    assert {group["lr"] for group in flat.param_groups} == {1e-3}


@pytest.mark.parametrize("decay", [0.0, 1.5, -0.1])
def test_a_decay_outside_zero_one_is_a_config_error(decay: float) -> None:
    with pytest.raises(ConfigError, match="model.layer_lr_decay"):
        parameter_groups(_tiny_bert(), EXCLUDE, decay)
