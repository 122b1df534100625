"""`mmrlhf.trainers.submit` against a real, private Ray head with token authentication.

The module starts its own head (`ray start --head --block`) in a new session, with its own
ports, `--temp-dir` and a random token, so it neither sees nor is seen by the in-process
cluster of the `ray_session` fixture (`ray.init()` only joins clusters recorded in the default
temp dir). Teardown never runs `ray stop`, which would kill every Ray process on the machine:
it sends SIGTERM to the `ray start` process it launched (which drains and stops its own
children) and then SIGKILLs, by PID, whatever is left of the processes it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mmrlhf.config import ConfigError
from mmrlhf.trainers import submit as sub

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@dataclass(frozen=True)
class Head:
    """A running private head: its job server URL and token."""

    address: str
    token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, session id, start time) for every process, from /proc."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), int(fields[3]), fields[19])
    return table


def _started_by(leader: int) -> dict[int, str]:
    """The processes `leader` started: its descendants plus its session (pid -> start time).

    Ray workers get their own process group but stay in the session; a job's driver gets its
    own session but is a descendant of a worker.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    owned = {pid for pid, (_, sid, _) in table.items() if sid == leader}
    stack = [leader]
    while stack:
        pid = stack.pop()
        if pid in table:
            owned.add(pid)
        stack.extend(children.get(pid, []))
    return {pid: table[pid][2] for pid in owned if pid in table}


def _alive(owned: dict[int, str]) -> list[int]:
    """Those of `owned` still running (same PID and start time, so never a reused PID)."""
    table = _proc_table()
    return [pid for pid, start in owned.items() if pid in table and table[pid][2] == start]


def _stop_head(proc: subprocess.Popen[bytes]) -> None:
    """Stop only what this module started: SIGTERM the `ray start --block` process (it drains
    the node and stops its children), then SIGKILL any of its processes still alive."""
    owned = _started_by(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and _alive(owned):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
    for pid in _alive(owned):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _wait_for_dashboard(url: str, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    request = urllib.request.Request(
        f"{url}/api/version", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the dashboard at {url} did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    """A private 2-CPU head with token auth, always stopped (by PID) at the end."""
    temp_dir = tempfile.mkdtemp(prefix="mmrlhf-head-", dir="/tmp")  # short: socket paths
    token = secrets.token_hex(32)
    gcs, dash, agent, client = (_free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if k not in (*AUTH_VARS, *sub._ADDRESS_ENV_VARS)}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",  # `python` in jobs: this venv
        OMP_NUM_THREADS="1",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="3",  # don't wait 30 s for a running job at stop
    )
    ray_cli = Path(bin_dir) / "ray"
    cmd = [
        str(ray_cli if ray_cli.exists() else shutil.which("ray")),
        "start", "--head", "--block", "--num-cpus", "2", "--disable-usage-stats",
        "--port", str(gcs), "--include-dashboard=true", "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dash), "--dashboard-agent-listen-port", str(agent),
        "--ray-client-server-port", str(client), "--temp-dir", temp_dir,
    ]  # fmt: skip
    log = Path(temp_dir) / "ray_start.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                cmd, env=env, cwd=temp_dir, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        url = f"http://127.0.0.1:{dash}"
        _wait_for_dashboard(url, token, proc, log)
        yield Head(address=url, token=token)
    finally:
        if proc is not None:
            _stop_head(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def authed(monkeypatch: pytest.MonkeyPatch, ray_head: Head) -> Head:
    """This client holds the head's token, as a user would set it."""
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    return ray_head


def _wait_status(address: str, job_id: str, wanted: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    status = sub.job_status(address, job_id)
    while status not in wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        status = sub.job_status(address, job_id)
    return status


@pytest.mark.ray
def test_missing_or_wrong_token_is_a_clear_error(
    ray_head: Head, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in AUTH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either

    # Token mode, but no token anywhere: caught before any request.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(sub.SubmitError, match="no authentication token was found") as err:
        sub.list_jobs(ray_head.address)
    assert "RAY_AUTH_TOKEN" in str(err.value) and "~/.ray/auth_token" in str(err.value)

    # No token sent: the server's 401 becomes our message.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(sub.SubmitError, match=r"RAY_AUTH_MODE=token") as err:
        sub.list_jobs(ray_head.address)
    assert ray_head.address in str(err.value) and "RAY_AUTH_TOKEN=" in str(err.value)

    # A wrong token: the 403 names where the token came from.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(sub.SubmitError, match="rejected the authentication token from RAY_AUTH"):
        sub.job_status(ray_head.address, "whatever")

    # RAY_AUTH_TOKEN_PATH works like Ray's loader (and a bad path is named).
    (tmp_path / "tok").write_text(ray_head.token + "\n")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert isinstance(sub.list_jobs(ray_head.address), list)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(sub.SubmitError, match="RAY_AUTH_TOKEN_PATH=.*missing"):
        sub.list_jobs(ray_head.address)


def test_unreachable_address_and_bad_config_fail_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    dead = f"127.0.0.1:{_free_port()}"
    with pytest.raises(sub.SubmitError, match=f"cannot reach a Ray job server at http://{dead}"):
        sub.job_status(dead, "whatever")

    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {num_epochs: 0}\n")
    with pytest.raises(ConfigError, match="num_epochs"):
        sub.submit(bad, f"http://{dead}")  # the config error wins: nothing is contacted


@pytest.mark.ray
def test_status_logs_and_stop(authed: Head, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray would let these override the address we pass; ours must win.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:1")
    client = sub._client(authed.address)
    job_id = client.submit_job(entrypoint="echo started-$((40 + 2)); sleep 300")

    assert _wait_status(authed.address, job_id, {"RUNNING"}, 60) == "RUNNING"
    assert sub.follow_job(authed.address, job_id, timeout_s=0.5) == "RUNNING"
    deadline = time.monotonic() + 30
    while "started-42" not in sub.job_logs(authed.address, job_id):
        assert time.monotonic() < deadline, "the job never printed"
        time.sleep(0.5)

    assert sub.stop_job(authed.address, job_id) is True
    assert _wait_status(authed.address, job_id, sub.TERMINAL_STATUSES, 60) == "STOPPED"
    assert sub.stop_job(authed.address, job_id) is False
    jobs = {j.job_id: j for j in sub.list_jobs(authed.address)}
    assert jobs[job_id].status == "STOPPED" and jobs[job_id].start_time is not None

    with pytest.raises(sub.SubmitError, match="no job 'nope'"):
        sub.job_status(authed.address, "nope")


@pytest.mark.ray
def test_submit_train_job_follows_to_success(authed: Head, tmp_path: Path) -> None:
    config = {
        "name": "submit-tiny",
        "output_dir": str(tmp_path / "results"),
        "env": {"task": "vqa", "image_size": 32, "num_objects": 2, "question_types": ["color"]},
        "model": {"embed_dim": 32},
        "training": {
            "num_env_runners": 0,
            "num_envs_per_env_runner": 4,
            "train_batch_size": 64,
            "minibatch_size": 32,
            "num_epochs": 1,
        },
        "stop": {"iterations": 50},  # the override below must win
        "checkpoint": {"every": 0},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "train.json"
    chunks: list[str] = []

    result = sub.submit(
        path,
        authed.address,
        overrides=["stop.iterations=1"],
        follow=True,
        timeout_s=150,
        out=str(out),
        on_log=chunks.append,
    )

    logs = "".join(chunks)
    assert result.status == "SUCCEEDED", f"{result.status}:\n{logs[-4000:]}"
    assert result.succeeded and not result.timed_out and result.logs_tail
    assert result.job_id.startswith("mmrlhf-train-submit-tiny-")
    assert "--set stop.iterations=1" in result.entrypoint and "mmrlhf.cli train" in logs
    summary = json.loads(out.read_text())
    assert summary["iterations"] == 1, summary
    assert summary["stop_reason"] == "iterations >= 1"
    (job,) = [j for j in sub.list_jobs(authed.address) if j.job_id == result.job_id]
    assert job.metadata["mmrlhf_command"] == "train" and job.status == "SUCCEEDED"


# ---- no cluster needed ----------------------------------------------------------------------


def test_entrypoint_writes_the_shipped_config_and_quotes_arguments(tmp_path: Path) -> None:
    text = 'name: it\'s "quoted" $HOME\nstop: {iterations: 1}\n'
    overrides = ["name=a b", "env.question_types=[color, 'shape']"]
    fake_python = tmp_path / "fake python"
    fake_python.write_text('#!/bin/sh\nprintf "%s|" "$@"\n')
    fake_python.chmod(0o755)
    cmd = sub.build_entrypoint(
        "train", "job cfg.yaml", overrides=overrides, out="o u t.json", python=str(fake_python)
    )
    env = {**os.environ, sub.CONFIG_ENV_VAR: text}
    ran = subprocess.run(["sh", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert (tmp_path / "job cfg.yaml").read_text() == text + "\n"
    assert ran.stdout.split("|")[:-1] == [
        "-m", "mmrlhf.cli", "train", "job cfg.yaml",
        "--set", "name=a b", "--set", "env.question_types=[color, 'shape']",
        "--out", "o u t.json",
    ]  # fmt: skip


def test_runtime_env_uploads_the_checkout_and_pip_is_opt_in() -> None:
    root = sub.project_root()
    assert (root / "pyproject.toml").is_file() and (root / "mmrlhf" / "cli.py").is_file()
    env = sub.build_runtime_env(root, "name: x\n")
    assert env["working_dir"] == str(root) and "pip" not in env
    assert {"/.venv/", "/.git/", "/results/", "*.png"} <= set(env["excludes"])
    assert env["env_vars"][sub.CONFIG_ENV_VAR] == "name: x\n"
    pip = sub.build_runtime_env(root, "", extra_pip=["tqdm"])["pip"]
    assert pip == ["tqdm"]
    assert any(r.startswith("ray[") for r in sub.project_requirements(root))


def test_address_and_token_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert sub.normalize_address(" 10.0.0.1:8265/ ") == "http://10.0.0.1:8265"
    assert sub.normalize_address("https://head:443") == "https://head:443"
    for var in (*AUTH_VARS, *sub._ADDRESS_ENV_VARS):
        monkeypatch.delenv(var, raising=False)
    assert sub.default_address() == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a GCS address: not a job server
    assert sub.default_address() == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert sub.default_address() == "http://head:8265"

    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "tok").write_text(" from-path ")
    env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")}
    assert sub.resolve_auth_token({}, home=tmp_path) == (
        "from-home",
        str(tmp_path / ".ray/auth_token"),
    )
    assert sub.resolve_auth_token(env, home=tmp_path)[0] == "from-path"  # type: ignore[index]
    assert sub.resolve_auth_token({**env, "RAY_AUTH_TOKEN": "e"}, home=tmp_path) == (
        "e",
        "RAY_AUTH_TOKEN",
    )
    assert sub.resolve_auth_token({}, home=tmp_path / "nowhere") is None

    # Sent as Ray does (RAY_AUTH_MODE=token), or when a token is given explicitly.
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sub._auth_headers() == ({}, None)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert sub._auth_headers()[0] == {"Authorization": "Bearer from-home"}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    assert sub._auth_headers() == ({}, None)
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert sub._auth_headers() == ({"Authorization": "Bearer t"}, "RAY_AUTH_TOKEN")
