"""Scene generation and the held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.render import render_scene, sprite_mask
from mmrlhf.envs.scenes import HELD_OUT, SHAPES, SIZES, sample_scene


@pytest.mark.parametrize("task", ["vqa", "caption", "retrieval", "dialogue"])
def test_train_split_never_shows_held_out_pairs(task: str) -> None:
    env = MyMultimodalEnv(task=task, split="train")
    for seed in range(300):
        env.reset(seed=seed)
        objects = getattr(env.task, "scene", None)
        objs = objects.objects if objects is not None else env.task.candidates  # retrieval
        assert not {o.pair for o in objs} & HELD_OUT


@pytest.mark.parametrize("task", ["vqa", "caption", "retrieval", "dialogue"])
def test_test_split_targets_are_held_out(task: str) -> None:
    env = MyMultimodalEnv(task=task, split="test")
    for seed in range(300):
        env.reset(seed=seed)
        if task == "retrieval":
            target = env.task.candidates[env.task.target]
        else:
            target = env.task.scene.target
        assert target.pair in HELD_OUT
        if task == "caption":  # the caption's target is the whole scene
            assert all(o.pair in HELD_OUT for o in env.task.scene.objects)


def test_scene_objects_occupy_distinct_cells_and_pairs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        scene = sample_scene(rng, 5, "train")
        assert len({o.cell for o in scene.objects}) == 5
        assert len({o.pair for o in scene.objects}) == 5


def test_unique_attribute_names_one_object() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        scene = sample_scene(rng, 4, "train", unique="shape")
        assert scene.count(scene.target.shape) == 1


def test_impossible_scene_is_refused() -> None:
    with pytest.raises(ValueError, match="only 4 colour-shape pairs"):
        sample_scene(np.random.default_rng(0), 5, "test", all_targets=True)


def test_sprites_differ_by_shape_and_size() -> None:
    masks = {(s, z): sprite_mask(s, z, 21) for s in SHAPES for z in SIZES}
    areas = {k: int(m.sum()) for k, m in masks.items()}
    for s in SHAPES:
        assert areas[(s, "large")] > 2 * areas[(s, "small")]
    assert len({m.tobytes() for m in masks.values()}) == len(masks)


def test_render_paints_each_object_in_its_cell() -> None:
    scene = sample_scene(np.random.default_rng(2), 3, "train")
    img = render_scene(scene.objects, 63)
    for obj in scene.objects:
        r, c = divmod(obj.cell, 3)
        cell = img[r * 21 : (r + 1) * 21, c * 21 : (c + 1) * 21]
        assert (cell != 24).any(), f"nothing drawn for {obj}"
