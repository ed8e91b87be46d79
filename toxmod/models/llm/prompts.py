"""Prompts as data: a template with ``{text}``, ``{labels}`` and ``{choices}`` slots, the questions a label
scheme asks, and few-shot exemplars drawn from the train split.

A levels scheme asks one question whose answers are the level names (one distribution over levels); a
multi-label scheme asks one yes/no question per label and reads P(yes), as ShieldGemma and Llama Guard
do. Which of the two is looked up by ``scheme.kind`` in ``QUESTION_SETS``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError

TEXT_SLOT = "{text}"
PLAIN_ANSWER_CUE = "Answer:"


@dataclass(frozen=True)
class PromptSettings:
    """``prompt.*``: the template, the system message, and how many train exemplars precede the text.

    ``template`` must contain ``{text}``; ``{labels}`` is filled with the question (the levels and their
    descriptions, or one label's), ``{choices}`` with the answer words. ``answer_prefix`` is put where
    the answer starts (after the chat template's assistant header). ``shots`` exemplars are drawn with
    ``seed`` from train only, ``balanced`` across label combinations, each cut to ``exemplar_max_chars``.
    """

    name: str = "zero_shot"
    template: str = "{labels}\n\nText: {text}\n\nAnswer with one word: {choices}."
    system: str | None = None
    answer_prefix: str = ""
    shots: int = 0
    balanced: bool = True
    seed: int = 0
    exemplar_max_chars: int = 400
    use_chat_template: bool = True

    def __post_init__(self) -> None:
        if TEXT_SLOT not in self.template:
            raise ConfigError(f"prompt.template of prompt={self.name} has no {TEXT_SLOT} slot")
        if self.template.count(TEXT_SLOT) != 1:
            raise ConfigError(f"prompt.template of prompt={self.name} has {TEXT_SLOT} more than once")
        if self.shots < 0:
            raise ConfigError(f"prompt.shots={self.shots}: expected >= 0")

    @property
    def sha256(self) -> str:
        """What identifies the prompt (tagged on the run; part of the response cache's key)."""
        wording = {k: v for k, v in asdict(self).items() if k != "name"}
        return hashlib.sha256(json.dumps(wording, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Question:
    """One question asked about every text: what fills ``{labels}`` and the answer words scored."""

    key: str
    labels_text: str
    choices: tuple[str, ...]


class QuestionSet:
    """The questions of a label scheme and how their answer probabilities become the scheme's scores."""

    def __init__(self, scheme: LabelScheme, descriptions: Mapping[str, str] | None) -> None:
        self.scheme = scheme
        self.descriptions = dict(descriptions or {})

    def describe(self, name: str) -> str:
        description = self.descriptions.get(name)
        return f"{name}: {description}" if description else name

    questions: list[Question]

    def answer(self, target: Any, question: int) -> str:
        """The right answer word of ``question`` for one row's encoded target (few-shot exemplars)."""
        raise NotImplementedError

    def scores(self, probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, len(scheme.output_names))`` from each question's ``(n, len(choices))`` probabilities."""
        raise NotImplementedError


class LevelQuestion(QuestionSet):
    """One question; the answers are the level names, lowest first."""

    def __init__(self, scheme: LabelScheme, descriptions: Mapping[str, str] | None) -> None:
        super().__init__(scheme, descriptions)
        listed = "\n".join(f"- {self.describe(level)}" for level in scheme.output_names)
        text = f"Which level describes the text?\n{listed}"
        self.questions = [Question("level", text, tuple(scheme.output_names))]

    def answer(self, target: Any, question: int) -> str:
        return self.scheme.output_names[int(target)]

    def scores(self, probabilities: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(probabilities[0], dtype=np.float64)


class YesNoQuestions(QuestionSet):
    """One yes/no question per label; a label's score is P(yes)."""

    CHOICES = ("yes", "no")

    def __init__(self, scheme: LabelScheme, descriptions: Mapping[str, str] | None) -> None:
        super().__init__(scheme, descriptions)
        self.questions = [
            Question(label, f"Is the text {self.describe(label)}?", self.CHOICES)
            for label in scheme.output_names
        ]

    def answer(self, target: Any, question: int) -> str:
        return self.CHOICES[0] if int(np.asarray(target)[question]) else self.CHOICES[1]

    def scores(self, probabilities: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(p, dtype=np.float64)[:, 0] for p in probabilities], axis=1)


QUESTION_SETS: dict[str, type[QuestionSet]] = {"levels": LevelQuestion, "multilabel": YesNoQuestions}


def question_set(scheme: LabelScheme, descriptions: Mapping[str, str] | None) -> QuestionSet:
    """The questions ``scheme`` asks; ``descriptions`` (``data.label_descriptions``) word the labels."""
    unknown = sorted(set(descriptions or {}) - set(scheme.output_names))
    if unknown:
        raise ConfigError(
            f"data.label_descriptions.{unknown[0]}: not a label of this data "
            f"({', '.join(scheme.output_names)})"
        )
    return QUESTION_SETS[scheme.kind](scheme, descriptions)


@dataclass(frozen=True)
class Exemplar:
    """A train text shown before the question, with its encoded target."""

    text: str
    target: Any


@dataclass(frozen=True)
class Turn:
    """One chat message."""

    role: str
    content: str


@dataclass
class PromptBuilder:
    """Renders a question about a text as chat turns (exemplars as earlier user/assistant turns)."""

    settings: PromptSettings
    questions: QuestionSet
    exemplars: list[Exemplar] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        """The prompt as asked: settings, question wording and exemplars (the run's ``prompt_sha256``
        tag and the response cache's key)."""
        content = {
            "settings": self.settings.sha256,
            "questions": [asdict(q) for q in self.questions.questions],
            "exemplars": [[e.text, e.target] for e in self.exemplars],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def user_message(self, question: Question, text: str) -> str:
        return (
            self.settings.template.replace("{labels}", question.labels_text)
            .replace("{choices}", ", ".join(question.choices))
            .replace(TEXT_SLOT, text)
        )

    def turns(self, index: int, text: str) -> list[Turn]:
        """The conversation asking question ``index`` about ``text`` (the answer is the next turn)."""
        question = self.questions.questions[index]
        turns = [Turn("system", self.settings.system)] if self.settings.system else []
        for exemplar in self.exemplars:
            shown = exemplar.text[: self.settings.exemplar_max_chars]
            turns.append(Turn("user", self.user_message(question, shown)))
            turns.append(Turn("assistant", self.questions.answer(exemplar.target, index)))
        turns.append(Turn("user", self.user_message(question, text)))
        return turns


def draw_exemplars(
    texts: Sequence[str], targets: np.ndarray, scheme: LabelScheme, shots: int, seed: int, balanced: bool
) -> list[Exemplar]:
    """``shots`` train rows drawn with ``seed``: round-robin over the label combinations (``balanced``),
    else uniformly; the same exemplars precede every text. Empty texts are never drawn."""
    if shots == 0:
        return []
    rng = np.random.default_rng(seed)
    usable = np.array([i for i, text in enumerate(texts) if text.strip()], dtype=np.int64)
    if len(usable) < shots:
        raise ConfigError(f"prompt.shots={shots}: the train split has only {len(usable)} usable texts")
    if not balanced:
        order = rng.choice(usable, size=shots, replace=False)
    else:
        keys = scheme.stratification_keys(np.asarray(targets)[usable])
        pools = {key: list(rng.permutation(usable[keys == key])) for key in sorted(set(keys.tolist()))}
        chosen: list[int] = []
        while len(chosen) < shots:
            for key in pools:
                if pools[key] and len(chosen) < shots:
                    chosen.append(pools[key].pop())
        order = rng.permutation(np.array(chosen))  # the last exemplar's label must not be predictable
    return [Exemplar(texts[i], np.asarray(targets)[i].tolist()) for i in order]


def render(tokenizer: Any, turns: list[Turn], answer_prefix: str, use_chat_template: bool) -> tuple[str, str]:
    """The conversation as the model reads it up to the answer, and what goes before each answer word.

    With a chat template (``tokenizer.chat_template``): the template with its generation prompt (the
    answer is the assistant's first words). Without one: the turns as plain text, each answer after
    ``Answer:`` and a space.
    """
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": t.role, "content": t.content} for t in turns]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + answer_prefix, ""
    parts: list[str] = []
    for turn in turns:
        if turn.role == "assistant":
            parts[-1] += f"\n{PLAIN_ANSWER_CUE} {turn.content}"
        else:
            parts.append(turn.content)
    return "\n\n".join(parts) + f"\n{PLAIN_ANSWER_CUE}" + answer_prefix, " "
