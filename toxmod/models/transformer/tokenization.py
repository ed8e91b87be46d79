"""WordPiece tokenizers for from-scratch students, trained on the training split's texts only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


MAX_PIECE_LENGTH = 16


def wordpiece_vocabulary(
    words: Counter[str], vocab_size: int, min_frequency: int = 2, max_piece_length: int = MAX_PIECE_LENGTH
) -> list[str]:
    """A deterministic WordPiece vocabulary from word counts.

    Every character seen ``min_frequency`` times (word-initial and ``##`` continuation forms) is
    kept so nothing frequent maps to [UNK]; the rest of the budget goes to the word-initial prefixes
    and ``##`` continuations covering the most characters (count x length), ties broken by the
    piece itself. (The ``tokenizers`` trainer breaks frequency ties by hash order, so two runs on
    the same texts differ; resumed and repeated runs need the same vocabulary.)
    """
    chars: Counter[str] = Counter()
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        for i, char in enumerate(word):
            chars[char if i == 0 else "##" + char] += count
        for start in range(len(word)):
            for end in range(start + 2, min(len(word), start + max_piece_length) + 1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                pieces[piece] += count
    alphabet = sorted(c for c, n in chars.items() if n >= min_frequency)
    budget = max(vocab_size - len(SPECIAL_TOKENS) - len(alphabet), 0)
    ranked = sorted(
        ((n * len(p.removeprefix("##")), p) for p, n in pieces.items() if n >= min_frequency),
        key=lambda item: (-item[0], item[1]),
    )
    return list(SPECIAL_TOKENS.values()) + alphabet + [p for _, p in ranked[:budget]]


def train_wordpiece_tokenizer(
    texts: Sequence[str], vocab_size: int = 8000, min_frequency: int = 2, lowercase: bool = True
) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer learned from ``texts``; the same texts give the same tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=lowercase, clean_text=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(str(text))))
    vocabulary = wordpiece_vocabulary(words, vocab_size, min_frequency)
    tokenizer = Tokenizer(
        models.WordPiece(
            {token: i for i, token in enumerate(vocabulary)}, unk_token=SPECIAL_TOKENS["unk_token"]
        )
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = (vocabulary.index(SPECIAL_TOKENS[k]) for k in ("cls_token", "sep_token"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
