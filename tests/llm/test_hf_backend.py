"""The ``hf`` backend on a tiny random Llama: prompts, exact answer log-likelihoods, the cached path
against the naive loop, few-shot exemplars from train only, truncation, and a whole train run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import JANITR_SLICE, compose_train
from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.models import Opening, load_scorer
from toxmod.models.llm import LLMScorer
from toxmod.models.llm.backends import ScoringStats
from toxmod.models.llm.hf import HFLanguageModel
from toxmod.models.llm.prompts import (
    PromptBuilder,
    PromptSettings,
    draw_exemplars,
    question_set,
    render,
)

LEVELS = LevelsScheme(["safe", "mild", "toxic", "severe"])
LABELS = MultiLabelScheme(["scam", "topic_crypto"], none_label="clean")
TEXTS = [
    "free airdrop claim now, connect your wallet",
    "good morning everyone " * 40,  # long: several batches of different lengths
    "ok",
    "the market is down today, bitcoin under 60k",
    "you are an idiot",
]


def language_model(directory: Path, max_prompt_tokens: int = 1000, batch_size: int = 2) -> HFLanguageModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(directory)
    return HFLanguageModel(model, AutoTokenizer.from_pretrained(directory), max_prompt_tokens, batch_size)


def builder(scheme, shots: int = 0, **settings) -> PromptBuilder:
    wording = {"severe": "threats or identity hate", "scam": "a scam or spam"}
    questions = question_set(scheme, {k: v for k, v in wording.items() if k in scheme.output_names})
    train = ["a b", "c d", "e f", "g h", "i j", "k l"]
    targets = np.array([0, 1, 2, 3, 0, 1]) if scheme is LEVELS else np.array([[1, 0], [0, 1], [0, 0]] * 2)
    exemplars = draw_exemplars(train, targets, scheme, shots, seed=0, balanced=True)
    return PromptBuilder(PromptSettings(system="You moderate.", **settings), questions, exemplars)


@pytest.mark.data_free
def test_prompt_renders_system_exemplars_question_and_label_wording(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    prompt = builder(LEVELS, shots=2)
    turns = prompt.turns(0, "THE TEXT")
    assert [t.role for t in turns] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert turns[-1].content.startswith(
        "Which level describes the text?\n- safe\n- mild\n- toxic\n- severe: threats"
    )
    assert "Text: THE TEXT" in turns[-1].content and turns[-1].content.endswith("safe, mild, toxic, severe.")
    assert {turns[2].content, turns[4].content} <= set(LEVELS.levels)
    chat, before = render(tokenizer, turns, "", use_chat_template=True)
    assert chat.startswith("<|im_start|>system\nYou moderate.<|im_end|>\n") and before == ""
    assert chat.endswith("<|im_end|>\n<|im_start|>assistant\n")
    plain, before = render(tokenizer, turns, "", use_chat_template=False)
    assert plain.endswith("Reply with one word: safe, mild, toxic, severe.\nAnswer:") or plain.endswith(
        "Answer with one word: safe, mild, toxic, severe.\nAnswer:"
    )
    assert before == " " and f"\nAnswer: {turns[2].content}\n\n" in plain
    # multi-label: one yes/no question per label, each with its wording
    questions = builder(LABELS).questions.questions
    assert [q.choices for q in questions] == [("yes", "no"), ("yes", "no")]
    assert questions[0].labels_text == "Is the text scam: a scam or spam?"
    assert questions[1].labels_text == "Is the text topic_crypto?"
    # the hash covers wording and exemplars
    assert builder(LEVELS, shots=2).sha256 == prompt.sha256 != builder(LEVELS, shots=3).sha256
    with pytest.raises(ConfigError, match="data.label_descriptions.nope"):
        question_set(LEVELS, {"nope": "x"})
    with pytest.raises(ConfigError, match=r"no \{text\} slot"):
        PromptSettings(template="{labels}")


@pytest.mark.data_free
@pytest.mark.parametrize("chat", [True, False])
def test_answer_loglikelihood_equals_a_hand_computed_value(tiny_lm: Path, chat: bool) -> None:
    lm = language_model(tiny_lm)
    question = lm.encode_question(builder(LEVELS, shots=1, use_chat_template=chat), 0)
    # chat: answers of several tokens (the continuation pass); plain: " safe" etc. are single tokens
    assert (max(len(c) for c in question.choices) > 1) == chat
    text = TEXTS[0]
    scores = lm.choice_logprobs(question, [text], ScoringStats())
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    for j, answer in enumerate(question.choices):
        sequence = question.head + ids + question.tail + answer
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([sequence])).logits[0]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        start = len(sequence) - len(answer)
        expected = sum(float(logprobs[start - 1 + t, token]) for t, token in enumerate(answer))
        assert scores[0, j] == pytest.approx(expected, abs=1e-4)


@pytest.mark.data_free
@pytest.mark.parametrize("scheme", [LEVELS, LABELS], ids=["levels", "multilabel"])
def test_prefix_cache_scores_equal_the_naive_loop(tiny_lm: Path, scheme) -> None:
    lm = language_model(tiny_lm, batch_size=2)
    prompt = builder(scheme, shots=3)
    for index in range(len(prompt.questions.questions)):
        question = lm.encode_question(prompt, index)
        cached = lm.choice_logprobs(question, TEXTS, ScoringStats())
        naive = lm.naive_choice_logprobs(question, TEXTS)
        assert np.abs(cached - naive).max() < 1e-4
        assert np.ptp(cached[:, 0]) > 1e-3  # texts are told apart: the comparison means something


@pytest.mark.data_free
def test_exemplars_are_balanced_across_labels_and_seeded() -> None:
    targets = np.array([0] * 50 + [1] * 10 + [2] * 5 + [3] * 3)
    texts = [f"text {i}" for i in range(len(targets))]
    drawn = draw_exemplars(texts, targets, LEVELS, 8, seed=3, balanced=True)
    assert sorted(e.target for e in drawn) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert drawn == draw_exemplars(texts, targets, LEVELS, 8, seed=3, balanced=True)
    assert drawn != draw_exemplars(texts, targets, LEVELS, 8, seed=4, balanced=True)
    unbalanced = draw_exemplars(texts, targets, LEVELS, 8, seed=3, balanced=False)
    assert len({e.text for e in unbalanced}) == 8


@pytest.mark.data_free
def test_long_texts_are_cut_from_the_middle_and_counted(tiny_lm: Path) -> None:
    lm = language_model(tiny_lm, max_prompt_tokens=200)
    question = lm.encode_question(builder(LEVELS), 0)
    words = " ".join(f"w{i}" for i in range(400))
    stats = ScoringStats()
    (ids,) = lm.text_ids(question, [words], stats)
    decoded = lm.tokenizer.decode(ids)
    assert decoded.startswith("w0 w1") and decoded.rstrip().endswith("w399") and " ... " in decoded
    assert stats.truncated_texts == 1
    assert stats.prompt_tokens[0] + max(len(c) for c in question.choices) <= 200
    scores = lm.choice_logprobs(question, [words, "short"], stats)
    assert np.isfinite(scores).all() and stats.truncated_texts == 2  # counted again when scored
    with pytest.raises(ConfigError, match="max_prompt_tokens=60"):
        language_model(tiny_lm, max_prompt_tokens=60).text_ids(question, ["x"], ScoringStats())


def test_zero_shot_train_run_fits_nothing_and_records_the_llm(tiny_lm: Path, tmp_path: Path) -> None:
    from toxmod.stages.train import train

    cfg = compose_train(
        [
            "model=llm/smollm2_135m",
            f"model.pretrained={tiny_lm}",
            "prompt=few_shot",
            "prompt.shots=6",
            "model.latency_texts=4",
            "latency.batch1_texts=50",
            *JANITR_SLICE,
            "tracking=none",
            "hardware=cpu",
            "hardware.threads=1",
            "bootstrap=0",
            "plots=false",
            "evaluate_splits=[calib,holdout]",
        ]
    )
    result = train(cfg, tmp_path / "run")
    run = result.run_dir
    exemplars = json.loads((run / "model" / "exemplars.json").read_text())
    train_ids = set((run / "split" / "train.ids.txt").read_text().split())
    import pandas as pd

    frame = pd.read_csv(cfg.data.path, usecols=["id", "text"]).astype({"id": str})
    train_texts = set(frame[frame["id"].isin(train_ids)]["text"])
    assert len(exemplars) == 6 and all(e["text"] in train_texts for e in exemplars)
    combos = [tuple(e["target"]) for e in exemplars]
    assert len(set(combos)) >= 3  # round-robin over the label combinations
    metrics = result.metrics
    assert (
        metrics["train_seconds"] < 5
        and metrics["llm/prompt_tokens_max"] >= metrics["llm/prompt_tokens_mean"] > 0
    )
    assert metrics["chance_warnings"] >= 1  # a random model: the run says it is no better than chance
    assert {"latency/batch1_ms_p50", "latency/batch1_ms_p95", "llm/batch_ms_per_text_p95"} <= set(metrics)
    # the weights folder lies outside the run: the opener names it, the run never chooses it
    with pytest.raises(ConfigError, match="lies outside this run and your toxmod folders"):
        load_scorer(run / "model")
    # the saved model reopens with its exemplars and scores exactly as in the run
    reopened = load_scorer(run / "model", opening=Opening(settings={"pretrained": str(tiny_lm)}))
    assert isinstance(reopened, LLMScorer) and reopened.exemplars[0].text == exemplars[0]["text"]
    holdout = pd.read_parquet(run / "predictions" / "holdout.parquet")
    texts = frame.set_index("id").loc[holdout["id"].astype(str).head(5), "text"].tolist()
    again = reopened.predict_scores(texts)
    stored = holdout[[c for c in holdout.columns if c.startswith("score/")]].to_numpy()[:5]
    assert np.abs(again - stored).max() < 1e-5


@pytest.mark.slow
def test_compare_puts_classical_and_llm_runs_on_one_split_in_one_table(tiny_lm: Path, tmp_path: Path) -> None:
    from tests.helpers import run_entry, tracking_overrides
    from toxmod.stages.train import train

    store = {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}", "artifact_root": str(tmp_path / "artifacts")}
    common = [*JANITR_SLICE, *tracking_overrides(store), "bootstrap=0", "hardware.threads=1"]
    common += ["latency.batch1_texts=4", "evaluate_splits=[holdout]"]
    runs = {
        "tfidf_logreg": ["model=tfidf_logreg", "model.max_features=2000"],
        "llm": ["model=llm/smollm2_135m", f"model.pretrained={tiny_lm}", "model.latency_texts=2"],
    }
    for name, overrides in runs.items():
        train(compose_train([*common, *overrides]), tmp_path / name, overrides)
    shown = run_entry("compare", *tracking_overrides(store), "format=csv", f"output={tmp_path / 'table.md'}")
    assert shown.returncode == 0, shown.stderr
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(shown.stdout)).set_index("kind")
    assert set(table.index) == {"tfidf_logreg", "llm"}
    assert table.loc["llm", "ctx_tokens"] > 0 and pd.isna(table.loc["tfidf_logreg", "ctx_tokens"])
    for column in (
        "recall",
        "fpr",
        "macro_f1",
        "exact_match",
        "mean_roc_auc",
        "ms/text",
        "size_mb",
        "params_m",
    ):
        assert table[column].notna().all() or column == "params_m", column
    markdown = (tmp_path / "table.md").read_text()
    assert "| kind |" in markdown.splitlines()[0] and "| llm |" in markdown


@pytest.mark.data_free
def test_a_gguf_package_serves_only_the_model_it_holds(tiny_lm: Path, monkeypatch) -> None:
    from toxmod.models.llm.hf import HFSettings
    from toxmod.models.llm.weights import resolve_llm_weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # "json" stands in for an installed package: were it used, the error would be "no .gguf file"
    package = {"gguf_package": "json", "gguf_package_model": "org/held-model"}
    with pytest.raises(ConfigError, match="model.pretrained=someone/other-model is not a local directory"):
        resolve_llm_weights(HFSettings(pretrained="someone/other-model", **package))
    with pytest.raises(ConfigError, match="model.gguf_package=json: no .gguf file"):
        resolve_llm_weights(HFSettings(pretrained="org/held-model", **package))
    assert resolve_llm_weights(HFSettings(pretrained=str(tiny_lm), **package)) == str(tiny_lm)
