"""The `mmrlhf` command.

    mmrlhf train CONFIG [--debug] [--resume CKPT] [--set a.b=v ...] [--out FILE.json]
    mmrlhf tune CONFIG [--resume] [--set ...] [--out FILE.json]
    mmrlhf submit CONFIG --address http://HEAD:8265 [--tune] [--follow] [--out FILE.json]
    mmrlhf jobs status|logs|stop JOB_ID --address http://HEAD:8265
    mmrlhf eval CHECKPOINT [--split test] [--episodes N] [--out FILE.json]
    mmrlhf plot RESULTS_DIR [--out curves.png]
    mmrlhf reward-model eval RM_CHECKPOINT --pairs CONFIG.yaml|PAIRS.npz [--distractor swap]
                             [--split test] [--greedy 300]
    mmrlhf reward-model audit RM_CHECKPOINT --policy CHECKPOINT [--episodes 300] [--split train]
    mmrlhf reward-model labels LABEL_LOG_DIR
    mmrlhf label EXP_DIR [--port 8765] [--token T] [--demo N]   # human labelling page
    mmrlhf env show --task vqa --episodes 8 --out sheet.png   # contact sheet of episodes
    mmrlhf env info --task caption                            # spaces and action meanings
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_json(path: str | None, data: Any) -> None:
    """Write a command's final metrics to `--out` (if given)."""
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str))


def cmd_train(args: argparse.Namespace) -> int:
    from mmrlhf.config import load_config
    from mmrlhf.trainers.train import train

    cfg = load_config(args.config, args.set)
    result = train(cfg, debug=args.debug, resume=args.resume, progress=print)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    print(f"results:        {result.run_dir / 'progress.jsonl'}")
    print(f"checkpoint:     {result.checkpoint}")
    print(f"learning curve: {summary.get('learning_curve')}")
    write_json(args.out, summary)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from mmrlhf.config import load_config
    from mmrlhf.trainers.tune import tune

    cfg = load_config(args.config, args.set)
    summary = tune(cfg, resume=args.resume)
    print(summary.table())
    best = summary.best
    print(f"best checkpoint: {best['checkpoint'] if best else None}")
    write_json(
        args.out,
        {"experiment_dir": str(summary.experiment_dir), "trials": summary.trials, "best": best},
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from mmrlhf.trainers.submit import submit

    result = submit(
        args.config,
        args.address,
        command="tune" if args.tune else "train",
        overrides=args.set,
        follow=args.follow,
        timeout_s=args.timeout,
        on_log=sys.stdout.write,
    )
    print(f"job {result.job_id}: {result.status} ({result.address})")
    write_json(args.out, result.to_dict())
    return 0 if (result.succeeded or not args.follow) else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    from mmrlhf.trainers import submit as jobs

    if args.action == "list":
        for job in jobs.list_jobs(args.address):
            print(job)
        return 0
    if not args.job_id:
        raise ValueError(f"jobs {args.action} needs a JOB_ID")
    if args.action == "status":
        print(jobs.job_status(args.address, args.job_id))
    elif args.action == "logs":
        print(jobs.job_logs(args.address, args.job_id), end="")
    else:
        stopped = jobs.stop_job(args.address, args.job_id)
        print("stop requested" if stopped else "job was not running")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mmrlhf.config import load_config
    from mmrlhf.trainers.evaluate import evaluate, markdown_table

    cfg = load_config(args.config, args.set) if args.config else None
    metrics = evaluate(args.checkpoint, cfg=cfg, split=args.split, episodes=args.episodes)
    print(markdown_table(metrics))
    write_json(args.out, metrics)
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from mmrlhf.feedback.labelstore import LabelStore
    from mmrlhf.trainers.label_server import resolve_store_path, serve

    serve(args.store, host=args.host, port=args.port, token=args.token,
          budget=args.budget, demo=args.demo, log_level=args.log_level)  # fmt: skip
    if args.out:
        with LabelStore(resolve_store_path(args.store)) as store:
            write_json(args.out, store.stats())
    return 0


def _show(metrics: dict[str, Any], out: str | None) -> int:
    """Print metrics as JSON and write them to `out` (if given)."""
    print(json.dumps(metrics, indent=2, default=str))
    write_json(out, metrics)
    return 0


def cmd_reward_model_eval(args: argparse.Namespace) -> int:
    from mmrlhf.trainers.reward_model import evaluate_reward_model

    metrics = evaluate_reward_model(
        args.checkpoint, args.pairs, n_pairs=args.n_pairs, distractor=args.distractor,
        split=args.split, greedy_episodes=args.greedy,
    )  # fmt: skip
    return _show(metrics, args.out)


def cmd_reward_model_audit(args: argparse.Namespace) -> int:
    from mmrlhf.trainers.reward_model import audit_reward_model

    return _show(audit_reward_model(args.checkpoint, args.policy, episodes=args.episodes,
                                    split=args.split), args.out)  # fmt: skip


def cmd_reward_model_labels(args: argparse.Namespace) -> int:
    from mmrlhf.feedback.coverage import label_coverage
    from mmrlhf.feedback.label_log import load_label_log

    labels, samples = load_label_log(args.log)
    return _show(label_coverage(labels, samples).to_dict(), args.out)


def cmd_plot(args: argparse.Namespace) -> int:
    from mmrlhf.trainers.plot import find_runs, plot_runs

    root = Path(args.results_dir)
    runs = find_runs(root)
    out = Path(args.out) if args.out else root / "learning_curves.png"
    plot_runs(runs, out)
    print(f"{len(runs)} run(s) -> {out}")
    return 0


def _env_from_args(args: argparse.Namespace, render: bool) -> Any:
    from mmrlhf.config import parse_overrides
    from mmrlhf.envs import MyMultimodalEnv

    cfg = {"task": args.task, "split": args.split, **parse_overrides(args.set)}
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

    def experiment(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("config", help="experiment YAML (see configs/)")
        p.add_argument("--set", action="append", default=[], metavar="A.B=VALUE",
                       help="override any config field; repeatable")  # fmt: skip
        p.add_argument("--out", help="write the final metrics as JSON here")
        return p

    train = experiment("train", "run one experiment")
    train.add_argument("--debug", action="store_true",
                       help="single process (no EnvRunner/Learner actors), for pdb")  # fmt: skip
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint")
    train.set_defaults(func=cmd_train)

    tune = experiment("tune", "run a Ray Tune sweep (tune: section of the config)")
    tune.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    tune.set_defaults(func=cmd_tune)

    from mmrlhf.trainers.submit import default_address

    submit = experiment("submit", "send train (or --tune) to a Ray cluster as a Ray Job")
    submit.add_argument("--address", default=default_address(),
                        help="job server, e.g. http://HEAD:8265 (token auth: set "
                             "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)")  # fmt: skip
    submit.add_argument("--tune", action="store_true", help="run `mmrlhf tune` on the cluster")
    submit.add_argument("--follow", action="store_true", help="stream logs until the job ends")
    submit.add_argument("--timeout", type=float, help="stop following after this many seconds")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add_parser("jobs", help="status, logs or stop of a submitted job")
    jobs.add_argument("action", choices=["status", "logs", "stop", "list"])
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--address", default=default_address())
    jobs.set_defaults(func=cmd_jobs)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on fresh episodes")
    ev.add_argument("checkpoint")
    ev.add_argument("--split", default="test", choices=["train", "test"])
    ev.add_argument("--episodes", type=int, default=200)
    ev.add_argument("--config", help="experiment YAML (default: the run's saved config.yaml)")
    ev.add_argument("--set", action="append", default=[], metavar="A.B=VALUE")
    ev.add_argument("--out", help="write the metrics as JSON here")
    ev.set_defaults(func=cmd_eval)

    plot = sub.add_parser("plot", help="learning curves of every run under a directory")
    plot.add_argument("results_dir")
    plot.add_argument("--out", help="PNG path (default: RESULTS_DIR/learning_curves.png)")
    plot.set_defaults(func=cmd_plot)

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
    rm = sub.add_parser("reward-model", help="RLHF reward models")
    rm_sub = rm.add_subparsers(dest="rm_command", required=True)
    rm_eval = rm_sub.add_parser("eval", help="preference accuracy on held-out labelled pairs")
    rm_eval.add_argument("checkpoint", help="reward-model directory (feedback.rm_save_dir)")
    rm_eval.add_argument(
        "--pairs", required=True, help="a .npz pairs file, or an experiment YAML to draw from"
    )
    rm_eval.add_argument("--n-pairs", type=int, default=500)
    rm_eval.add_argument(
        "--distractor",
        choices=("random", "swap"),
        default="random",
        help="generated pairs' worse answer: random (easy), or swap (the right answer for "
        "another image with the same prompt: needs the image)",
    )
    rm_eval.add_argument(
        "--split", choices=("train", "test"), help="env split of generated pairs and scenes"
    )
    rm_eval.add_argument(
        "--greedy", type=int, default=0, metavar="N",
        help="also score every answer of N fresh scenes (one-step tasks): how often the right "
        "one is on top, what a policy maximising the model's reward would get right",
    )  # fmt: skip
    rm_eval.add_argument("--out", help="write the metrics as JSON here")
    rm_eval.set_defaults(func=cmd_reward_model_eval)
    rm_audit = rm_sub.add_parser(
        "audit", help="how the reward model scores a policy's wrong answers against the right"
    )
    rm_audit.add_argument("checkpoint", help="reward-model directory (feedback.rm_save_dir)")
    rm_audit.add_argument("--policy", required=True, help="a training checkpoint to play")
    rm_audit.add_argument("--episodes", type=int, default=300)
    rm_audit.add_argument("--split", choices=("train", "test"), default="train")
    rm_audit.add_argument("--out", help="write the metrics as JSON here")
    rm_audit.set_defaults(func=cmd_reward_model_audit)
    rm_labels = rm_sub.add_parser(
        "labels", help="which responses a label log has shown right or wrong, and how often"
    )
    rm_labels.add_argument("log", help="label-log directory (feedback.rm_label_log)")
    rm_labels.add_argument("--out", help="write the counts as JSON here")
    rm_labels.set_defaults(func=cmd_reward_model_labels)

    lab = sub.add_parser("label", help="serve the labelling page for an experiment's labels")
    lab.add_argument("store", help="experiment directory (labels.sqlite inside) or a .sqlite file")
    lab.add_argument("--host", default="127.0.0.1")
    lab.add_argument("--port", type=int, default=8765)
    lab.add_argument("--token", help="shared token raters must send (default: $MMRLHF_LABEL_TOKEN)")
    lab.add_argument("--budget", type=int, help="set the store's label budget")
    lab.add_argument("--demo", type=int, default=0, metavar="N",
                     help="fill an empty store with N demo episodes per task")  # fmt: skip
    lab.add_argument("--log-level", default="info")
    lab.add_argument("--out", help="write the final label stats as JSON here on exit")
    lab.set_defaults(func=cmd_label)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from mmrlhf.trainers.submit import SubmitError
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, SubmitError) as e:
        # Config and data errors already name what was wrong and what is allowed.
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
