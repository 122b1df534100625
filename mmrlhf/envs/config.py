"""`EnvConfig`: every option of `MyMultimodalEnv`, validated at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mmrlhf.envs.scenes import MAX_OBJECTS
from mmrlhf.validation import explain

QuestionType = Literal["color", "shape", "count", "exists", "position"]
QUESTION_TYPES: tuple[str, ...] = ("color", "shape", "count", "exists", "position")


class EnvConfig(BaseModel):
    """Options of `MyMultimodalEnv`. Unknown keys are rejected, bad values name the field.

    Attributes:
        task: registered task name (`vqa`, `caption`, `retrieval`, `dialogue`, `dataset`, ...).
        image_size: side of the square RGB observation, pixels.
        max_text_len: length of the padded token observation.
        num_objects: objects per scene (vqa, caption, dialogue).
        split: `train` never shows held-out colour-shape pairs; `test` targets them.
        reward_mode: `env` pays the task score at episode end; `none` pays nothing, so every bit
            of signal must come from feedback.
        question_types: vqa question kinds to draw from.
        num_candidates: retrieval candidates per episode.
        retrieval_mode: `text_to_image`, `image_to_text`, or `mixed` (a coin flip per episode).
        max_caption_len: caption words before the episode ends without EOS (default: room for
            the ground truth plus one).
        max_turns: dialogue questions before the agent must have guessed.
        turn_penalty: dialogue score lost per question asked.
        dataset_path: JSONL file for the `dataset` task.
        image_dir: folder image paths in the JSONL are relative to (default: the JSONL's folder).
        tokenizer_path: local Hugging Face tokenizer directory; default is the built-in vocabulary.
        image_cache_size: decoded dataset images kept in memory.
        scene_repeats: resets in a row that serve the same scene (image and text) before a new
            one is drawn; > 1 gives several answers to one scene, which RLHF queries can
            compare side by side (`feedback.query_group: scene`). A seeded reset starts anew.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = "vqa"
    image_size: int = Field(64, ge=16, le=512)
    max_text_len: int = Field(32, ge=4, le=512)
    num_objects: int = Field(3, ge=1, le=MAX_OBJECTS)
    split: Literal["train", "test"] = "train"
    reward_mode: Literal["env", "none"] = "env"
    question_types: tuple[QuestionType, ...] = QUESTION_TYPES
    num_candidates: int = Field(4, ge=2, le=9)
    retrieval_mode: Literal["text_to_image", "image_to_text", "mixed"] = "mixed"
    max_caption_len: int | None = Field(None, ge=1, le=64)
    max_turns: int = Field(6, ge=1, le=32)
    turn_penalty: float = Field(0.05, ge=0.0, le=1.0)
    dataset_path: str | None = None
    image_dir: str | None = None
    tokenizer_path: str | None = None
    image_cache_size: int = Field(256, ge=0)
    scene_repeats: int = Field(1, ge=1, le=64)

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from mmrlhf.envs.tasks import task_names

        names = task_names()
        if v not in names:
            raise ValueError(f"unknown task {v!r}; allowed: {', '.join(names)}")
        return v

    @field_validator("question_types")
    @classmethod
    def _some_questions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"needs at least one of {', '.join(QUESTION_TYPES)}")
        return v

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None = None, **overrides: Any) -> EnvConfig:
        """Validate a plain mapping (e.g. RLlib's `env_config`) with a readable error."""
        merged = {**dict(data or {}), **overrides}
        try:
            return cls(**merged)
        except ValidationError as e:
            raise ValueError(explain(e, cls, "env")) from None
