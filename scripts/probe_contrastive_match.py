"""Does the reward model's label-free contrastive embedding say where an answer is right?

    python scripts/probe_contrastive_match.py --config configs/rlhf_vqa.yaml --out probe.json

Pretrains a reward-model ensemble of the config (its `rm_*` fields) with the image-prompt
InfoNCE steps only (`rm_pretrain_steps` on `--unlabelled` random-policy episodes, no label),
then, on `--scenes` fresh scenes per split, scores each colour and shape word w by the cosine
between the scene's pooled image embedding and the pooled embedding of a prompt that names w
("what shape is the red object ?" for red), averaged over members. It reports, per word and
split, the area under the ROC curve for "w is the scene's right answer" over all scenes (both
question kinds, as a query picker that does not know them would see), the base rate, and the
rate among the 10% best-matching scenes.

Why: floor challengers (`feedback.query_challengers: floor`) try an answer on random scenes,
where a colour word is right about once in twelve, so 24 tries miss it with probability about
0.15; a label-trained reward model ranks such scenes no better than chance (AUC 0.39-0.54,
docs/architecture.md). The contrastive weights have seen no label, so its bias cannot reach them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mmrlhf.config import load_config, parse_overrides
from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.scenes import COLORS, SHAPES
from mmrlhf.envs.tokenizer import split_words
from mmrlhf.feedback.pairs import random_episodes, rollout
from mmrlhf.feedback.reward_model import RewardEnsemble
from mmrlhf.feedback.rlhf import spec_for_sample, trainer_settings
from mmrlhf.feedback.rm_trainer import RewardModelTrainer
from mmrlhf.feedback.samples import EpisodeSample, stack_samples


def naming_prompts(samples: list[EpisodeSample], words: tuple[str, ...]) -> dict[str, np.ndarray]:
    """For each word, the token ids of one prompt among `samples` that contains it."""
    out: dict[str, np.ndarray] = {}
    for sample in samples:
        for word in set(split_words(sample.prompt)) & set(words):
            out.setdefault(word, sample.prompt_ids)
    missing = sorted(set(words) - set(out))
    if missing:
        raise ValueError(f"no prompt among the episodes names {missing}")
    return out


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `score` for `positive` (Mann-Whitney; no ties expected)."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score)] = np.arange(len(score))
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def word_similarities(
    ensemble: RewardEnsemble, images: torch.Tensor, naming: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per word, the members' mean cosine between each image (B, H, W, 3) and the word's
    naming prompt, (B,); each member embeds the images once for all words."""
    prompts = torch.as_tensor(np.stack(list(naming.values())))
    norm = torch.nn.functional.normalize
    sims = []
    with torch.no_grad():
        for member in ensemble.members:
            image, text = member.embeddings(images, prompts)  # (B, D), (W, D)
            sims.append(norm(image, dim=-1) @ norm(text, dim=-1).T)
    mean = torch.stack(sims).mean(0).numpy()
    return {word: mean[:, j] for j, word in enumerate(naming)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rlhf_vqa.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    parser.add_argument("--unlabelled", type=int, default=2048)
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, parse_overrides(args.set))
    fb, env_cfg = cfg.feedback, cfg.env
    unlabelled = random_episodes(
        env_cfg, args.unlabelled, seed=args.seed, response_len=fb.rm_response_len
    )
    env = MyMultimodalEnv(env_cfg)
    spec = spec_for_sample(fb, unlabelled[0], vocab_size=int(env.tokenizer.vocab_size))
    trainer = RewardModelTrainer(RewardEnsemble(spec, seed=args.seed), trainer_settings(fb))
    started = time.monotonic()
    pretrain = trainer.pretrain(unlabelled, fb.rm_pretrain_steps)
    pretrain_s = time.monotonic() - started
    words = COLORS + SHAPES
    naming = naming_prompts(unlabelled, words)
    rng = np.random.default_rng([args.seed, 2])
    trainer.ensemble.eval()
    report: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("train", "test"):
        split_env = MyMultimodalEnv(env_cfg.model_copy(update={"split": split}))
        scenes = [
            rollout(split_env, seed=10_000 + i, oracle_prob=1.0, rng=rng,
                    response_len=fb.rm_response_len, episode_id=f"{split}{i}")[0]
            for i in range(args.scenes)
        ]  # fmt: skip
        similarities = word_similarities(trainer.ensemble, stack_samples(scenes).image, naming)
        right = np.array([s.response for s in scenes])
        report[split] = {}
        for word, score in similarities.items():
            positive = right == word
            if positive.all() or not positive.any():
                continue  # a word never (or always) right on this split: no AUC
            top = np.argsort(-score)[: max(1, len(scenes) // 10)]
            report[split][word] = {
                "auc": round(auc(score, positive), 3),
                "base_rate": round(float(positive.mean()), 3),
                "top10_rate": round(float(positive[top].mean()), 3),
            }
        print(split, json.dumps(report[split]), flush=True)
    result = {
        "config": args.config, "overrides": args.set, "seed": args.seed,
        "unlabelled": args.unlabelled, "scenes": args.scenes,
        "pretrain": pretrain, "pretrain_s": round(pretrain_s, 1), "words": report,
    }  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
