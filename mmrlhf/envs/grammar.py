"""The synthetic tasks' language: templates, answer words, and the shared word vocabulary.

All built-in tasks share one `WordTokenizer`, so a model trained on one task reads the others'
text with the same ids.
"""

from __future__ import annotations

from functools import lru_cache

from mmrlhf.envs.scenes import COLORS, MAX_OBJECTS, POSITIONS, SHAPES, SIZES
from mmrlhf.envs.tokenizer import WordTokenizer, split_words

NUMBERS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")[
    : MAX_OBJECTS + 1
]
PLURALS: dict[str, str] = {s: s + "s" for s in SHAPES}

VQA_TEMPLATES: dict[str, str] = {
    "color": "what color is the {shape} ?",
    "shape": "what shape is the {color} object ?",
    "count": "how many {plural} are there ?",
    "exists": "is there a {color} {shape} ?",
    "position": "where is the {color} {shape} ?",
}
VQA_ANSWERS: tuple[str, ...] = (*COLORS, *SHAPES, *NUMBERS, "yes", "no", *POSITIONS)

CAPTION_PROMPT = "describe the scene :"
CAPTION_WORDS: tuple[str, ...] = (*SIZES, *COLORS, *SHAPES, "and", "<eos>")

RETRIEVAL_T2I = "find the {size} {color} {shape}"
RETRIEVAL_I2T = "match :"

DIALOGUE_PROMPTS: dict[str, str] = {
    "color": "find the {color} object",
    "shape": "find the {shape}",
    "size": "find the {size} object",
}
DIALOGUE_QUESTIONS: tuple[tuple[str, str, str], ...] = (
    *(("color", c, f"is it {c} ?") for c in COLORS),
    *(("shape", s, f"is it a {s} ?") for s in SHAPES),
    *(("size", z, f"is it {z} ?") for z in SIZES),
)


def _all_text() -> list[str]:
    texts = [
        *VQA_TEMPLATES.values(),
        *VQA_ANSWERS,
        CAPTION_PROMPT,
        *CAPTION_WORDS,
        RETRIEVAL_T2I,
        RETRIEVAL_I2T,
        *DIALOGUE_PROMPTS.values(),
        *(q for _, _, q in DIALOGUE_QUESTIONS),
        "guess",
        *PLURALS.values(),
    ]
    return texts


@lru_cache(maxsize=1)
def grammar_tokenizer() -> WordTokenizer:
    """The built-in vocabulary: every word the synthetic tasks can produce."""
    slot_marks = {"{", "}", "plural"}
    words = {w for t in _all_text() for w in split_words(t)} - slot_marks
    return WordTokenizer(sorted(words))
