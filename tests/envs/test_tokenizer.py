"""Tokenizers: the grammar vocabulary and a local Hugging Face tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.grammar import grammar_tokenizer
from mmrlhf.envs.tokenizer import SPECIALS, HFTokenizer, WordTokenizer


def test_specials_come_first_and_pad_is_zero() -> None:
    tok = grammar_tokenizer()
    assert tok.itos[: len(SPECIALS)] == SPECIALS and tok.stoi["<pad>"] == 0


def test_encode_decode_round_trip_and_padding() -> None:
    tok = grammar_tokenizer()
    ids = tok.encode("what color is the circle ?", 10)
    assert ids.dtype == np.int64 and ids.shape == (10,)
    assert (ids[6:] == 0).all() and (ids[:6] != 0).all()
    assert tok.decode(ids) == "what color is the circle ?"


def test_unknown_words_map_to_unk_and_long_text_is_cut() -> None:
    tok = WordTokenizer(["a", "b"])
    assert tok.decode(tok.encode("a zebra b", 8)) == "a <unk> b"
    assert tok.encode("a b a b a b", 4).tolist() == [5, 6, 5, 6]


def test_grammar_covers_every_task_text() -> None:
    tok = grammar_tokenizer()
    unk = tok.stoi["<unk>"]
    for task in ["vqa", "caption", "retrieval", "dialogue"]:
        env = MyMultimodalEnv(task=task)
        for seed in range(50):
            obs, info = env.reset(seed=seed)
            done = False
            while not done:
                assert unk not in obs["text"], tok.decode(obs["text"])
                obs, _, done, _, info = env.step(info["oracle_action"])


def _save_tiny_bert_tokenizer(path: Path) -> None:
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "color", "is", "the", "?"]
    vocab += ["red", "green", "blue", "circle", "square", "triangle", "diamond", "how", "many"]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(path))


def test_hf_tokenizer_from_a_local_directory(tmp_path: Path) -> None:
    _save_tiny_bert_tokenizer(tmp_path)
    tok = HFTokenizer(tmp_path)
    ids = tok.encode("what color is the circle ?", 12)
    assert ids.shape == (12,) and ids[-1] == 0
    assert tok.decode(ids) == "what color is the circle?"

    env = MyMultimodalEnv(task="vqa", tokenizer_path=str(tmp_path), max_text_len=16)
    assert env.observation_space["text"].high.max() == tok.vocab_size - 1
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_hf_tokenizer_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.*is not a directory nor one of the aliases"):
        HFTokenizer(tmp_path / "nope")
