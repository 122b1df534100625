"""Answer kinds from the questions' wording (`feedback.kinds`) and floor challengers placed by
them (`query_challenger_scenes="unexplained_kinds"`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.env import MyMultimodalEnv
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.kinds import KIN, OTHER_KIND, UNKNOWN, kind_tiers, wording_kin
from mmrlhf.feedback.novelty import JudgedCounts, judgement_key
from mmrlhf.feedback.preferences import PreferenceLabel
from mmrlhf.feedback.queries import novel_queries
from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import PROMPT_LEN, make_sample

# Token ids of a tiny vqa: "what color is the <shape> ?" and "what shape is the <colour> object"
WHAT, COLOR, SHAPE, IS, THE, OBJECT, MARK = 1, 2, 3, 4, 5, 6, 7
CIRCLE, SQUARE = 30, 31
RED, GREEN, BLUE = 40, 41, 42


def _ids(*tokens: int) -> np.ndarray:
    ids = np.zeros(PROMPT_LEN, np.int64)
    ids[: len(tokens)] = tokens
    return ids


def color_question(shape: int) -> np.ndarray:
    return _ids(WHAT, COLOR, IS, THE, shape, MARK)


def shape_question(colour: int) -> np.ndarray:
    return _ids(WHAT, SHAPE, IS, THE, colour, OBJECT)


def _episode(
    episode_id: str, prompt: np.ndarray, answer: int, *, floor: bool = False, seed: int = 0
) -> EpisodeSample:
    sample = make_sample(episode_id, response=answer, seed=seed)
    return replace(sample, prompt_ids=prompt, floor_share=1.0 if floor else None)


def test_words_that_fill_one_slot_of_the_wording_are_kin() -> None:
    prompts = [color_question(CIRCLE), color_question(SQUARE), shape_question(RED),
               shape_question(GREEN), shape_question(BLUE), shape_question(BLUE)]  # fmt: skip
    kin = wording_kin(prompts)
    assert kin[RED] == {GREEN, BLUE} and kin[CIRCLE] == {SQUARE}
    assert COLOR not in kin and SHAPE not in kin  # the rest of their wordings differ
    assert 0 not in kin  # padding is no word
    assert wording_kin([color_question(CIRCLE)]) == {}


def test_a_question_is_tried_first_where_its_known_answers_are_the_answers_kin() -> None:
    kin = wording_kin([color_question(CIRCLE), color_question(SQUARE), shape_question(RED),
                       shape_question(GREEN), shape_question(BLUE)])  # fmt: skip
    on_circle, on_square, on_red = (
        _episode("a", color_question(CIRCLE), GREEN).prompt_key,
        _episode("b", color_question(SQUARE), GREEN).prompt_key,
        _episode("c", shape_question(RED), GREEN).prompt_key,
    )
    right = {on_circle: {RED}, on_red: {CIRCLE}}  # nothing known for squares' colour
    two_words = replace(_episode("two-words", color_question(CIRCLE), GREEN),
                        response_ids=np.array([GREEN, BLUE], np.int64))  # fmt: skip
    candidates = [
        _episode("green-circle", color_question(CIRCLE), GREEN),
        _episode("green-red", shape_question(RED), GREEN),
        _episode("green-square", color_question(SQUARE), GREEN),
        _episode("word-9", color_question(CIRCLE), 9),  # no kin in the wording
        two_words,
    ]
    assert on_square not in right
    assert kind_tiers(candidates, right, kin).tolist() == [KIN, OTHER_KIND, UNKNOWN, UNKNOWN,
                                                           UNKNOWN]  # fmt: skip
    # With none of its kin known, an answer has no place yet: every question is a guess.
    assert kind_tiers(candidates[:2], {on_red: {CIRCLE}}, kin).tolist() == [UNKNOWN, UNKNOWN]
    assert kind_tiers(candidates[:2], {}, kin).tolist() == [UNKNOWN, UNKNOWN]


def test_the_counts_keep_the_one_word_answers_shown_right_per_question() -> None:
    a = _episode("a", color_question(CIRCLE), RED)
    b = _episode("b", color_question(CIRCLE), GREEN)
    c = replace(_episode("c", shape_question(RED), CIRCLE),
                response_ids=np.array([CIRCLE, SQUARE], np.int64))  # fmt: skip
    d = _episode("d", shape_question(RED), SQUARE)
    counts = JudgedCounts()
    counts.add([PreferenceLabel("a", "b", 1.0), PreferenceLabel("c", "d", 0.5, tie="both_good")],
               {s.episode_id: s for s in (a, b, c, d)})  # fmt: skip
    assert counts.right_words == {a.prompt_key: {RED}, d.prompt_key: {SQUARE}}


def test_kinds_send_an_open_colour_to_colour_questions() -> None:
    """Green is open. Its floor draw at a shape question is unexplained (fit 0) and its draw
    at a colour question less so (fit 0.6): by the spread alone the shape question goes
    first, by kind the colour question, whose known answer (red) is green's kin."""
    pool = [
        _episode("green@circle", color_question(CIRCLE), GREEN, floor=True, seed=1),
        _episode("red@circle", color_question(CIRCLE), RED, seed=2),
        _episode("green@blue", shape_question(BLUE), GREEN, floor=True, seed=3),
        _episode("square@blue", shape_question(BLUE), SQUARE, seed=4),
        # wording only: the other questions the env asks
        _episode("w1", color_question(SQUARE), RED, seed=5),
        _episode("w2", shape_question(RED), SQUARE, seed=6),
        _episode("w3", shape_question(GREEN), CIRCLE, seed=7),  # green fills the colour slot
    ]
    fits = {"green@circle": 0.6, "green@blue": 0.0}
    right = {pool[1].prompt_key: {RED}, pool[3].prompt_key: {SQUARE}}

    def challenger(right_words: dict[str, set[int]] | None) -> str:
        queries = novel_queries(
            pool, 1, k=2, rng=np.random.default_rng(0),
            score_fn=lambda b: np.zeros((1, len(b))), judged={}, challengers="floor",
            give_up=10, spread_questions=True, right_words=right_words,
            scene_fit=lambda b: np.array([fits[s.episode_id] for s in b]),
        )  # fmt: skip
        return queries[0][0].episode_id

    assert challenger(None) == "green@blue"
    assert challenger(right) == "green@circle"


def test_kinds_without_a_scene_model_spread_an_open_colour_over_the_colour_questions() -> None:
    """Green is open, with two floor draws at each colour question and one at a shape
    question; no scene fit. By kind, all four tries go to the colour questions, two each (a
    question where green just failed waits); by the spread alone, the shape question is one
    of the first three."""
    pool = [
        _episode(f"green@{name}-{j}", color_question(shape), GREEN, floor=True, seed=10 * j + i)
        for i, (name, shape) in enumerate((("circle", CIRCLE), ("square", SQUARE)))
        for j in range(2)
    ]  # fmt: skip
    pool += [_episode("green@blue", shape_question(BLUE), GREEN, floor=True, seed=50)]
    pool += [
        _episode(f"{name}-partner{j}", prompt, answer, seed=60 + 10 * j + answer)
        for name, prompt, answer in (("circle", color_question(CIRCLE), RED),
                                     ("square", color_question(SQUARE), BLUE),
                                     ("blue", shape_question(BLUE), SQUARE))
        for j in range(2)
    ]  # fmt: skip
    # wording only: red and green fill the colour slot too
    pool += [_episode(f"w{c}", shape_question(c), CIRCLE, seed=90 + c) for c in (RED, GREEN)]
    right = {pool[5].prompt_key: {RED}, pool[7].prompt_key: {BLUE}, pool[9].prompt_key: {SQUARE}}

    def questions(n: int, right_words: dict[str, set[int]] | None, seed: int) -> list[str]:
        queries = novel_queries(
            pool, n, k=2, rng=np.random.default_rng(seed),
            score_fn=lambda b: np.zeros((1, len(b))), judged={}, challengers="floor",
            give_up=10, spread_questions=True, right_words=right_words,
        )  # fmt: skip
        return [q[0].episode_id.split("-")[0] for q in queries]

    for seed in range(5):
        by_kind = questions(4, right, seed)
        assert sorted(by_kind[:2]) == sorted(by_kind[2:]) == ["green@circle", "green@square"]
        assert "green@blue" in questions(3, None, seed)


def test_later_rounds_bring_back_only_answers_of_a_known_kind() -> None:
    """Green (kin of red, shown right) and word 9 (no kin) each failed once, the first
    round's give-up: the second round brings back green, not word 9."""
    pool = [  # the partners first: with no model, the bets go in pool order
        *(_episode(f"red{j}", color_question(CIRCLE), RED, seed=3 + j) for j in range(2)),
        _episode("green", color_question(CIRCLE), GREEN, floor=True, seed=1),
        _episode("nine", color_question(CIRCLE), 9, floor=True, seed=2),
        _episode("w", shape_question(GREEN), CIRCLE, seed=9),  # wording: green is red's kin
        _episode("w2", shape_question(RED), SQUARE, seed=10),
    ]
    keys = {s.episode_id: judgement_key(s) for s in pool}
    right = {pool[0].prompt_key: {RED}}

    def challengers(right_words: dict[str, set[int]] | None) -> list[str]:
        queries = novel_queries(
            pool, 2, k=2, rng=np.random.default_rng(0),
            score_fn=lambda b: np.zeros((1, len(b))), judged={keys["green"]: 1, keys["nine"]: 1},
            challengers="floor", give_up=1, give_up_rounds=2, spread_questions=True,
            shown_right={keys["red0"]: 1}, right_words=right_words,
        )  # fmt: skip
        return sorted(q[0].episode_id for q in queries)

    assert challengers(right) == ["green"]
    assert challengers(None) == ["green", "nine"]  # no kinds: every answer comes back


def test_kinds_place_challengers_without_an_answer_head() -> None:
    config = FeedbackConfig(enabled=True, source="reward_model", rm_head="compare",
                            query_mode="novel", query_challengers="floor", query_give_up=4,
                            query_challenger_scenes="kinds")  # fmt: skip
    assert config.query_challenger_scenes == "kinds"
    with pytest.raises(ValidationError, match="'kinds' acts on the floor"):
        FeedbackConfig(enabled=True, source="reward_model", query_challenger_scenes="kinds")


def test_unexplained_kinds_is_a_scene_rule_of_the_rotation() -> None:
    config = FeedbackConfig(enabled=True, source="reward_model", rm_head="answer_sigmoid",
                            query_mode="novel", query_challengers="floor", query_give_up=4,
                            query_challenger_scenes="unexplained_kinds")  # fmt: skip
    assert config.query_challenger_scenes == "unexplained_kinds"


def test_on_vqa_the_wording_makes_colours_and_shapes_two_kinds() -> None:
    env = MyMultimodalEnv(EnvConfig(task="vqa", num_objects=2, question_types=["color", "shape"]))
    kin = wording_kin(env.reset(seed=seed)[0]["text"] for seed in range(200))

    def word(text: str) -> int:
        return next(int(i) for i in env.tokenizer.encode(text, 4) if i)

    def words(ids: frozenset[int]) -> set[str]:
        return {env.tokenizer.decode([i]).strip() for i in ids}

    assert words(kin[word("green")]) == {"red", "blue", "yellow", "orange", "purple"}
    assert words(kin[word("triangle")]) == {"circle", "square", "diamond"}
