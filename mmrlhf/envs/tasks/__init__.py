"""Task registry. Importing this package registers the built-in tasks."""

from mmrlhf.envs.tasks.base import (
    Observation,
    Outcome,
    Task,
    get_task,
    register_task,
    task_names,
)
from mmrlhf.envs.tasks.caption import CaptionTask
from mmrlhf.envs.tasks.dataset import DatasetTask
from mmrlhf.envs.tasks.dialogue import DialogueTask
from mmrlhf.envs.tasks.retrieval import RetrievalTask
from mmrlhf.envs.tasks.vqa import VQATask

__all__ = [
    "CaptionTask",
    "DatasetTask",
    "DialogueTask",
    "Observation",
    "Outcome",
    "RetrievalTask",
    "Task",
    "VQATask",
    "get_task",
    "register_task",
    "task_names",
]
