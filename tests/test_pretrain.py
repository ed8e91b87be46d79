"""DAPT: masked-LM pretraining on train-split text (or a filtered corpus), then a fine-tune from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import compose_train, janitr_frame, stored_runs, tracking_overrides
from toxmod.config import compose_config
from toxmod.data.text import normalize_text
from toxmod.errors import ConfigError
from toxmod.models.transformer.pretraining import check_pretrain_settings
from toxmod.stages.pretrain import corpus_texts, run_pretraining
from toxmod.stages.train import train

TINY = ["model=student", "student=tiny", "model.max_length=48", "hardware=cpu", "tracking=none"]


def test_corpus_file_loses_every_evaluation_text(tmp_path: Path) -> None:
    frame = janitr_frame()
    holdout_text = frame.loc[frame["split"] == "holdout", "text"].iloc[0]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"an unlabeled domain post about airdrops\n{holdout_text.upper()}\n\n")
    cfg = compose_config("pretrain", [*TINY, f"pretrain.corpus={corpus}"])
    texts, info = corpus_texts(cfg)
    assert texts == ["an unlabeled domain post about airdrops"] and info["removed"] == 1


def test_corpus_data_config_is_all_its_texts_minus_evaluation_texts() -> None:
    frame = janitr_frame()
    frame = frame[frame["split"] != "none"]
    is_evaluation = frame["split"].isin(["valid", "calib", "holdout"])
    evaluation = set(frame.loc[is_evaluation, "text"].map(normalize_text))
    expected = [t for t in frame["text"] if normalize_text(t) not in evaluation]
    assert 0.95 * (frame["split"] == "train").sum() < len(expected)  # train, less copies of evaluation texts

    cfg = compose_config("pretrain", [*TINY, "pretrain.corpus=janitr"])
    texts, info = corpus_texts(cfg)
    assert texts == expected and info["corpus"] == "data=janitr (all rows)"
    assert info["removed"] == len(frame) - len(expected)


def test_unknown_corpus_names_the_data_configs(tmp_path: Path) -> None:
    cfg = compose_config("pretrain", [*TINY, f"pretrain.corpus={tmp_path / 'missing.txt'}"])
    with pytest.raises(ConfigError, match=r"no such file .*a data config \(.*janitr.*ruddit"):
        corpus_texts(cfg)


@pytest.mark.slow
def test_dapt_then_fine_tune_from_it(tmp_path: Path) -> None:
    cfg = compose_config(
        "pretrain", [*TINY, "data.max_rows=600", "pretrain.max_steps=5", "pretrain.batch_size=16"]
    )
    out_dir = run_pretraining(cfg, tmp_path / "dapt")
    record = json.loads((tmp_path / "dapt" / "dapt.json").read_text())
    assert record["dapt/steps"] == 5 and record["corpus"] == "janitr train split"
    assert (out_dir / "config.json").is_file() and (out_dir / "tokenizer.json").is_file()

    fine_tune = compose_train(
        [*TINY, "data=janitr", "data.max_rows=600", "model.init_from=" + str(out_dir), "trainer.max_steps=4"]
    )
    result = train(fine_tune, tmp_path / "run")
    assert result.metrics["train/global_steps"] == 4
    # Same data config and seed: DAPT saw exactly the fine-tune's train split.
    assert record["texts"] == result.metrics["train_rows"]


@pytest.mark.slow
def test_dapt_in_two_chunks_equals_one_run(tmp_path: Path, store: dict[str, str]) -> None:
    from safetensors.torch import load_file

    settings = [
        *TINY[:-1],  # with a real MLflow store
        *tracking_overrides(store),
        "data.max_rows=600",
        "pretrain.batch_size=16",
        "pretrain.max_epochs=2",
    ]
    whole = run_pretraining(compose_config("pretrain", settings), tmp_path / "whole")
    chunked_dir = tmp_path / "chunked"
    run_pretraining(compose_config("pretrain", [*settings, "pretrain.max_steps=9"]), chunked_dir)
    first_chunk = json.loads((chunked_dir / "dapt.json").read_text())
    assert first_chunk["dapt/steps"] == 9 and (chunked_dir / "checkpoints" / "last.ckpt").is_file()
    run_id = json.loads((chunked_dir / "tracking.json").read_text())["run_id"]
    resume = f"resume={chunked_dir}"

    with pytest.raises(ConfigError, match=r"pretrain.lr=0.001 \(the run: 5e-05\)"):
        run_pretraining(compose_config("pretrain", [*settings, resume, "pretrain.lr=1e-3"]), tmp_path)
    chunked = run_pretraining(compose_config("pretrain", [*settings, resume]), tmp_path / "new")

    assert chunked == chunked_dir.resolve() / "dapt_model" and not (tmp_path / "new").exists()
    records = [json.loads((d.parent / "dapt.json").read_text()) for d in (whole, chunked)]
    assert records[0]["dapt/steps"] == records[1]["dapt/steps"] == records[0]["dapt/planned_steps"] > 9
    assert records[0]["dapt/final_mlm_loss"] == pytest.approx(records[1]["dapt/final_mlm_loss"], abs=1e-5)
    weights = [load_file(d / "model.safetensors") for d in (whole, chunked)]
    assert max((weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0]) < 1e-5
    dapt_runs = {run.info.run_id: run.info.status for run in stored_runs(store)}
    assert len(dapt_runs) == 2 and dapt_runs[run_id] == "FINISHED" and set(dapt_runs.values()) == {"FINISHED"}


@pytest.mark.slow
def test_dapt_resume_is_refused_when_the_corpus_changed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    posts = [f"airdrop number {i} is live, claim your tokens" for i in range(64)]
    corpus.write_text("\n".join(posts))
    settings = [*TINY, "data.max_rows=600", "pretrain.batch_size=16", f"pretrain.corpus={corpus}"]
    run_dir = tmp_path / "dapt"
    run_pretraining(compose_config("pretrain", [*settings, "pretrain.max_steps=2"]), run_dir)
    corpus.write_text("\n".join(posts[:-1]))
    changed = r"^resume: the corpus changed \(sha256 \w{12} vs the run.s \w{12}\)"
    with pytest.raises(ConfigError, match=changed):
        run_pretraining(compose_config("pretrain", [*settings, f"resume={run_dir}"]), tmp_path / "new")
    assert (run_dir / "dapt.json").is_file()  # the finished chunk is left as it was


@pytest.mark.parametrize(
    ("setting", "bad", "good", "message"),
    [
        ("mlm_probability", 1.5, 0.3, "pretrain.mlm_probability=1.5: expected a number in (0, 1)"),
        ("max_epochs", 0, 2, "pretrain.max_epochs=0: expected a positive integer"),
        ("max_epochs", -1, 2, "pretrain.max_epochs and pretrain.max_steps are both open: set one of them"),
        ("lr", -1, 1e-4, "pretrain.lr=-1: expected a number > 0"),
        ("warmup_ratio", "abc", 0, "pretrain.warmup_ratio='abc': expected a number in [0, 1]"),
        ("max_steps", 2.5, 10, "pretrain.max_steps=2.5: expected an integer (-1: open)"),
    ],
)
def test_bad_pretrain_settings_are_one_line_errors(
    setting: str, bad: object, good: object, message: str
) -> None:
    settings = {"batch_size": 32, "max_epochs": 1, "max_steps": -1, "lr": 5e-5}
    with pytest.raises(ConfigError) as error:
        check_pretrain_settings({**settings, setting: bad})
    assert str(error.value) == message
    check_pretrain_settings({**settings, setting: good})
