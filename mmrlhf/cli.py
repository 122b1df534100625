"""The `mmrlhf` command.

    mmrlhf env show --task vqa --episodes 8 --out sheet.png   # contact sheet of episodes
    mmrlhf env info --task caption                            # spaces and action meanings
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import yaml

log = logging.getLogger(__name__)


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings to a dict; values are parsed as YAML (numbers, lists, booleans)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _env_from_args(args: argparse.Namespace, render: bool) -> Any:
    from mmrlhf.envs import MyMultimodalEnv

    cfg = {"task": args.task, "split": args.split, **parse_sets(args.set)}
    return MyMultimodalEnv(cfg, render_mode="rgb_array" if render else None)


def cmd_env_show(args: argparse.Namespace) -> int:
    from mmrlhf.envs.sheet import write_contact_sheet

    env = _env_from_args(args, render=True)
    summary = write_contact_sheet(env, args.out, args.episodes, args.policy, args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_env_info(args: argparse.Namespace) -> int:
    env = _env_from_args(args, render=False)
    info = {
        "task": env.cfg.task,
        "observation_space": str(env.observation_space),
        "action_space": str(env.action_space),
        "actions": env.action_names(),
        "config": env.cfg.model_dump(),
    }
    print(json.dumps(info, indent=2, default=str))
    return 0


def _add_env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="vqa", help="task name (vqa, caption, retrieval, ...)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any EnvConfig field"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrlhf", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    env = sub.add_parser("env", help="inspect MyMultimodalEnv")
    env_sub = env.add_subparsers(dest="env_command", required=True)
    show = env_sub.add_parser("show", help="write a contact sheet of rendered episodes")
    _add_env_args(show)
    show.add_argument("--episodes", type=int, default=8)
    show.add_argument("--policy", default="random", choices=["random", "oracle"])
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--out", default="sheet.png", help="PNG path")
    show.set_defaults(func=cmd_env_show)
    info = env_sub.add_parser("info", help="print spaces, actions and config as JSON")
    _add_env_args(info)
    info.set_defaults(func=cmd_env_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ValueError as e:
        # Config and data errors already name what was wrong and what is allowed.
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
