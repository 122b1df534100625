"""Write a small image + question dataset in the `dataset` task's JSONL format.

    python scripts/make_example_dataset.py --out data/shapes [--rows 400]

Images and questions come from the synthetic vqa task (train split for "train" rows, test split
for "test" rows), saved as PNG files with one JSON object per line, so `configs/
dataset_feedback.yaml` has real files to load. Any folder of your own images works the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.grammar import VQA_ANSWERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/shapes")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args()

    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n_test = int(args.rows * args.test_fraction)
    lines = []
    for split, count, offset in (("train", args.rows - n_test, 0), ("test", n_test, 10**6)):
        env = MyMultimodalEnv(task="vqa", split=split, question_types=("color", "shape"))
        for i in range(count):
            obs, info = env.reset(seed=offset + i)
            name = f"images/{split}_{i:05d}.png"
            Image.fromarray(obs["image"]).save(out / name)
            answer = VQA_ANSWERS[info["oracle_action"]]
            lines.append(
                {"image": name, "question": env.task.prompt(), "answer": answer, "split": split}
            )
    (out / "data.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    print(f"wrote {len(lines)} rows to {out / 'data.jsonl'}")


if __name__ == "__main__":
    main()
