"""Answer kinds from the questions' wording, for floor challengers (`queries.novel_queries`).

Words that fill the same slot of a question's wording are of one kind: "what shape is the
_ object ?" takes red, green, blue, ..., and "what color is the _ ?" takes circle, square,
.... An answer the labels have not shown right yet is then likely right for the questions
whose known answers are its kin (a colour for colour questions), and unlikely for questions
whose known answers are not. Measured on five vqa runs' labels: 172 of the 336 tries that
failed before a colour or shape word's first win were at questions of the other kind
(docs/architecture.md, "Challengers where the known answers do not fit").

Only the prompts' token ids are read: no labels, no model. Prompts that share no wording
give no kin, and the tiers then say nothing (every candidate in the middle one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from mmrlhf.feedback.samples import EpisodeSample

# Tiers of a candidate question for an answer (lower goes first).
KIN = 0  # the question's known answers include kin of the answer
UNKNOWN = 1  # no evidence either way
OTHER_KIND = 2  # the answer has known kin, but none answers this question


def wording_kin(prompts: Iterable[np.ndarray]) -> dict[int, frozenset[int]]:
    """Token -> the other tokens that fill the same slot of some prompt (the prompt with that
    position masked; 0 = padding, skipped)."""
    slots: dict[tuple[int, ...], set[int]] = defaultdict(set)
    for ids in {tuple(int(t) for t in p if t != 0) for p in prompts}:
        for j, token in enumerate(ids):
            slots[(*ids[:j], -1, *ids[j + 1 :])].add(token)
    kin: dict[int, set[int]] = defaultdict(set)
    for words in slots.values():
        for word in words:
            kin[word] |= words - {word}
    return {word: frozenset(others) for word, others in kin.items() if others}


def answer_word(sample: EpisodeSample) -> int | None:
    """The response's token id when it is one word, else None."""
    tokens = sample.response_ids[sample.response_ids != 0]
    return int(tokens[0]) if len(tokens) == 1 else None


def known_words(right_words: Mapping[str, Collection[int]]) -> set[int]:
    """Every one-word answer shown right, whatever the question."""
    return set().union(*right_words.values()) if right_words else set()


def of_known_kind(word: int | None, known: Collection[int], kin: Mapping[int, Collection[int]]
                  ) -> bool:  # fmt: skip
    """Whether some kin of `word` is among `known`: its kind answers some question."""
    return word is not None and any(mate in known for mate in kin.get(word, ()))


def kind_tiers(
    candidates: Sequence[EpisodeSample],
    right_words: Mapping[str, Collection[int]],
    kin: Mapping[int, Collection[int]],
) -> np.ndarray:
    """Each candidate's tier (`KIN`, `UNKNOWN`, `OTHER_KIND`) for its own answer at its own
    question.

    Args:
        candidates: Episodes whose answers would be challengers.
        right_words: Prompt key -> one-word answers the labels showed right for it.
        kin: `wording_kin` of the questions.
    """
    known = known_words(right_words)
    tiers = np.full(len(candidates), UNKNOWN, dtype=np.int64)
    for i, sample in enumerate(candidates):
        word = answer_word(sample)
        if not of_known_kind(word, known, kin):
            continue  # nothing known of its kind: no evidence where it belongs
        here = right_words.get(sample.prompt_key, ())
        if here:
            tiers[i] = KIN if of_known_kind(word, here, kin) else OTHER_KIND
    return tiers
