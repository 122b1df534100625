"""`submit`: send an experiment to a Ray cluster as a Ray Job, and look after it there.

    result = submit("configs/quickstart.yaml", "http://HEAD:8265", follow=True)
    print(result.job_id, result.status)          # SUCCEEDED, FAILED, STOPPED, ...
    job_status(address, result.job_id); job_logs(address, result.job_id)
    stop_job(address, result.job_id); list_jobs(address)

What travels with a job:

* **The code.** The project checkout (the directory holding `pyproject.toml`) is the job's
  `working_dir`: Ray zips it (minus `DEFAULT_EXCLUDES` and whatever `.gitignore` names),
  unpacks it on the cluster, runs the entrypoint there and puts it first on `PYTHONPATH`, so
  the job runs *this* checkout's `mmrlhf` even where the cluster has an older one installed.
* **The config.** The YAML file is validated here first (a bad config fails before anything is
  sent), then shipped inside the job (the environment variable `MMRLHF_JOB_CONFIG_YAML`, which
  the entrypoint writes to a file next to the code), so it need not live in the checkout and
  the job runs exactly the file validated here. `--set` overrides are passed on unchanged.
* **Not the dependencies, by default.** The entrypoint runs with the cluster's own Python
  (`python` on the cluster's `PATH`, see `python=`), which must already have ray, torch and the
  rest installed. A runtime-env `pip` list would make every job build a virtualenv on each
  node, slowly, and PyPI's default torch wheel is the large CUDA build; so `pip` is opt-in:
  `extra_pip=[...]` (for example `project_requirements()`) installs on top of the cluster's
  packages.

Token authentication (Ray 2.60 enables it by default on new clusters): the job server wants
`Authorization: Bearer <token>`. The token is looked up the way Ray's own clients do it, first
`RAY_AUTH_TOKEN`, then the file named by `RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`. It is
sent when `RAY_AUTH_MODE=token` or when `RAY_AUTH_TOKEN`/`RAY_AUTH_TOKEN_PATH` is set, never when
`RAY_AUTH_MODE=disabled`. A missing or rejected token raises `SubmitError` saying what to set.

Where results land: relative `output_dir`s resolve inside the job's working directory on the
cluster, which Ray deletes with the session. Use an absolute `output_dir` on storage the
cluster keeps (or shares with you) for checkpoints you want back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from mmrlhf.config import load_config

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

logger = logging.getLogger(__name__)

Command = Literal["train", "tune"]

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
"""Job statuses after which nothing changes any more."""

CONFIG_ENV_VAR = "MMRLHF_JOB_CONFIG_YAML"
"""Carries the experiment YAML into the job; the entrypoint writes it to a file."""

DEFAULT_EXCLUDES: tuple[str, ...] = (
    # Anchored: top-level folders of a checkout that are never code.
    "/.venv/",
    "/venv/",
    "/.git/",
    "/results/",
    "/build/",
    "/dist/",
    "/ray_results/",
    "/wandb/",
    # Anywhere: caches, build metadata, images, media and databases.
    "__pycache__/",
    "*.pyc",
    ".pytest_cache/",
    ".ruff_cache/",
    ".mypy_cache/",
    "*.egg-info/",
    ".ipynb_checkpoints/",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.mp4",
    "*.sqlite",
    "*.sqlite3",
    "*.db",
)
"""Gitignore-style patterns left out of the uploaded `working_dir` (on top of `.gitignore`)."""

_AUTH_HELP = (
    "Set RAY_AUTH_MODE=token and give this client the cluster's token: RAY_AUTH_TOKEN=<token>, "
    "or RAY_AUTH_TOKEN_PATH=<file holding it>. For a head started with `ray start` on this "
    "machine the token is the RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH the head was started with, "
    "else the file ~/.ray/auth_token (`ray get-auth-token` on the head prints it)."
)

_ADDRESS_ENV_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
_env_lock = threading.Lock()


class SubmitError(RuntimeError):
    """A job could not be submitted or queried; the message says what to do about it."""


@dataclass(frozen=True)
class JobInfo:
    """One job on the cluster, as `list_jobs` reports it."""

    job_id: str
    status: str
    entrypoint: str
    message: str = ""
    start_time: float | None = None
    """Seconds since the epoch, or None before the job starts."""
    end_time: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SubmitResult:
    """A submitted job: its id, where it runs and, with `follow=True`, how it ended.

    Attributes:
        job_id: The Ray submission id (`mmrlhf-train-<name>-<hex>`).
        address: The job server's URL.
        status: The last status seen: PENDING / RUNNING right after submission; a terminal one
            (SUCCEEDED, FAILED, STOPPED) after following it to the end.
        entrypoint: The shell command the cluster runs.
        out: The `--out` JSON path on the cluster (relative paths: inside the job's working dir).
        logs_tail: The last lines of the job's logs (filled when following).
        timed_out: Following stopped at `timeout_s`; the job itself keeps running.
    """

    job_id: str
    address: str
    status: str
    entrypoint: str = ""
    out: str = ""
    logs_tail: str = ""
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for the CLI's `--out`)."""
        return {
            "job_id": self.job_id,
            "address": self.address,
            "status": self.status,
            "entrypoint": self.entrypoint,
            "out": self.out,
            "timed_out": self.timed_out,
        }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def submit(
    config_path: str | Path,
    address: str,
    *,
    command: Command = "train",
    overrides: Sequence[str] = (),
    follow: bool = False,
    extra_pip: Sequence[str] = (),
    timeout_s: float | None = None,
    out: str | None = None,
    python: str = "python",
    working_dir: str | Path | None = None,
    on_log: Callable[[str], None] | None = None,
) -> SubmitResult:
    """Validate an experiment here, then run `mmrlhf <command>` on it as a Ray Job.

    Args:
        config_path: Experiment YAML. It is read and validated locally (with `overrides`), so a
            bad config raises `mmrlhf.config.ConfigError` before anything is sent.
        address: The job server, i.e. the head's dashboard: `http://HEAD:8265` (a bare
            `HEAD:8265` means `http://`). The `RAY_ADDRESS` / `RAY_API_SERVER_ADDRESS`
            variables do not override it (see `default_address` for that).
        command: `train` (one run) or `tune` (the config's sweep).
        overrides: `a.b=value` strings, passed to the job as `--set a.b=value`.
        follow: Wait for the job to end, streaming its logs to `on_log`, and return its
            terminal status and last log lines.
        extra_pip: Packages the cluster installs for this job (a runtime-env `pip` list, on
            top of the cluster's own environment). Empty by default: the cluster's Python must
            already have the project's dependencies (see the module docstring for why).
        timeout_s: With `follow`, stop waiting after this many seconds (the job keeps running;
            `timed_out` is set).
        out: Where the job writes its final metrics (`--out`), on the cluster. Default:
            `<output_dir>/<name>/<command>_result.json` of the config.
        python: The interpreter command on the cluster.
        working_dir: What to upload as the code. Default: this checkout (`project_root()`).
        on_log: Receives each new chunk of log text when following (default: this module's
            logger, at INFO).

    Returns:
        The job's id, address and last seen status.

    Raises:
        mmrlhf.config.ConfigError: The config is invalid.
        SubmitError: The cluster is unreachable, refuses the token, or rejects the job.
    """
    cfg = load_config(config_path, overrides)
    config_text = Path(config_path).read_text()
    root = Path(working_dir).resolve() if working_dir is not None else project_root()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.name).strip("-") or "exp"
    job_id = f"mmrlhf-{command}-{slug}-{uuid.uuid4().hex[:8]}"
    out = out or str(PurePosixPath(cfg.output_dir) / cfg.name / f"{command}_result.json")
    entrypoint = build_entrypoint(
        command, f"{job_id}.yaml", overrides=overrides, out=out, python=python
    )
    runtime_env = build_runtime_env(root, config_text, extra_pip=extra_pip)
    metadata = {
        "mmrlhf_command": command,
        "mmrlhf_config": str(config_path),
        "mmrlhf_name": cfg.name,
    }

    url = normalize_address(address)
    client = _client(url)
    logger.info("submitting %s to %s (working_dir %s)", job_id, url, root)
    with _translate_errors(url):
        client.submit_job(
            entrypoint=entrypoint,
            submission_id=job_id,
            runtime_env=runtime_env,
            metadata=metadata,
        )
    result = SubmitResult(job_id=job_id, address=url, status="PENDING", entrypoint=entrypoint,
                          out=out)  # fmt: skip
    if not follow:
        result.status = _status(client, url, job_id)
        return result
    result.status = _follow(client, url, job_id, timeout_s=timeout_s, on_log=on_log)
    result.timed_out = result.status not in TERMINAL_STATUSES
    if result.timed_out:
        logger.warning("stopped following %s after %ss; it is still %s on the cluster",
                       job_id, timeout_s, result.status)  # fmt: skip
    with _translate_errors(url, job_id):
        result.logs_tail = _tail(client.get_job_logs(job_id))
    return result


def follow_job(
    address: str,
    job_id: str,
    *,
    timeout_s: float | None = None,
    on_log: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
) -> str:
    """Stream a job's logs to `on_log` until it ends (or `timeout_s` passes); its last status."""
    url = normalize_address(address)
    return _follow(_client(url), url, job_id, timeout_s=timeout_s, on_log=on_log, poll_s=poll_s)


def job_status(address: str, job_id: str) -> str:
    """The job's status: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
    url = normalize_address(address)
    return _status(_client(url), url, job_id)


def job_logs(address: str, job_id: str) -> str:
    """Everything the job has printed so far (stdout and stderr of its entrypoint)."""
    url = normalize_address(address)
    client = _client(url)
    with _translate_errors(url, job_id):
        return str(client.get_job_logs(job_id))


def stop_job(address: str, job_id: str) -> bool:
    """Ask the cluster to stop a job; True if it was still running (False if already ended)."""
    url = normalize_address(address)
    client = _client(url)
    with _translate_errors(url, job_id):
        # Ray answers True while the job's supervisor actor is still being torn down, which
        # outlives the STOPPED status by a moment; a job whose status has ended is not stopped.
        ended = _status_str(client.get_job_status(job_id)) in TERMINAL_STATUSES
        stopped = False if ended else bool(client.stop_job(job_id))
    logger.info("stop %s on %s: %s", job_id, url, "requested" if stopped else "already ended")
    return stopped


def list_jobs(address: str) -> list[JobInfo]:
    """All jobs the cluster knows about, oldest first."""
    url = normalize_address(address)
    client = _client(url)
    with _translate_errors(url):
        details = client.list_jobs()
    jobs = [
        JobInfo(
            job_id=str(d.submission_id or d.job_id),
            status=_status_str(d.status),
            entrypoint=str(d.entrypoint or ""),
            message=str(d.message or ""),
            start_time=d.start_time / 1000 if d.start_time else None,
            end_time=d.end_time / 1000 if d.end_time else None,
            metadata=dict(d.metadata or {}),
        )
        for d in details
    ]
    return sorted(jobs, key=lambda j: j.start_time or 0.0)


def default_address() -> str:
    """The job server to use when none is given: `RAY_API_SERVER_ADDRESS`, else an `http`
    `RAY_ADDRESS`, else the local head's dashboard `http://127.0.0.1:8265`."""
    for var in _ADDRESS_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value.startswith(("http://", "https://")):
            return value
    return "http://127.0.0.1:8265"


# --------------------------------------------------------------------------------------------
# Building the job
# --------------------------------------------------------------------------------------------


def project_root() -> Path:
    """The checkout `mmrlhf` is imported from (the directory holding its `pyproject.toml`)."""
    import mmrlhf

    root = Path(mmrlhf.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise SubmitError(
            f"mmrlhf is imported from {root}, which is not a project checkout (no "
            "pyproject.toml), so there is no code to upload: install it editable from a "
            "checkout (`pip install -e .`) or pass working_dir= the checkout"
        )
    return root


def project_requirements(root: Path | None = None) -> list[str]:
    """The `[project].dependencies` of the checkout's pyproject, e.g. for `extra_pip`."""
    pyproject = (root or project_root()) / "pyproject.toml"
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with pyproject.open("rb") as f:
        return list(tomllib.load(f).get("project", {}).get("dependencies", []))


def build_entrypoint(
    command: Command,
    config_file: str,
    *,
    overrides: Sequence[str] = (),
    out: str,
    python: str = "python",
) -> str:
    """The job's shell command: write the shipped config to `config_file`, then run the CLI."""
    args = [python, "-m", "mmrlhf.cli", command, config_file]
    for item in overrides:
        args += ["--set", item]
    args += ["--out", out]
    write = f'printf "%s\\n" "${CONFIG_ENV_VAR}" > {shlex.quote(config_file)}'
    return f"{write} && {shlex.join(args)}"


def build_runtime_env(
    root: Path, config_text: str, *, extra_pip: Sequence[str] = ()
) -> dict[str, Any]:
    """The job's runtime env: the checkout as `working_dir`, the config, opt-in `pip`."""
    env: dict[str, Any] = {
        "working_dir": str(root),
        "excludes": list(DEFAULT_EXCLUDES),
        "env_vars": {CONFIG_ENV_VAR: config_text, "PYTHONUNBUFFERED": "1"},
    }
    if extra_pip:
        env["pip"] = list(extra_pip)
    return env


def normalize_address(address: str) -> str:
    """`HEAD:8265` -> `http://HEAD:8265`; trailing slashes dropped; other schemes kept."""
    address = address.strip().rstrip("/")
    if not address:
        raise SubmitError("no Ray job server address given (e.g. http://127.0.0.1:8265)")
    return address if "://" in address else f"http://{address}"


# --------------------------------------------------------------------------------------------
# Talking to the job server
# --------------------------------------------------------------------------------------------


def resolve_auth_token(environ: Mapping[str, str] | None = None,
                       home: Path | None = None) -> tuple[str, str] | None:  # fmt: skip
    """The token Ray's clients would use, and where it came from; None if there is none.

    Order (as in Ray 2.60's token loader): `RAY_AUTH_TOKEN`, the file `RAY_AUTH_TOKEN_PATH`
    (an error if set but unreadable or empty), `~/.ray/auth_token`. Whitespace is stripped.
    """
    env = os.environ if environ is None else environ
    token = env.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "RAY_AUTH_TOKEN"
    path_var = env.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if path_var:
        path = Path(path_var).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as e:
            raise SubmitError(f"RAY_AUTH_TOKEN_PATH={path_var} cannot be read: {e}") from None
        if not token:
            raise SubmitError(f"RAY_AUTH_TOKEN_PATH={path_var} is empty")
        return token, f"RAY_AUTH_TOKEN_PATH={path_var}"
    default = (home or Path.home()) / ".ray" / "auth_token"
    if default.is_file():
        token = default.read_text().strip()
        if token:
            return token, str(default)
    return None


def _auth_headers() -> tuple[dict[str, str], str | None]:
    """The Authorization header to send (if any) and the token's source."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode == "disabled":
        return {}, None
    explicit = any(os.environ.get(v, "").strip() for v in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if mode != "token" and not explicit:
        return {}, None
    found = resolve_auth_token()
    if found is None:
        raise SubmitError(
            "RAY_AUTH_MODE=token but no authentication token was found (RAY_AUTH_TOKEN and "
            f"RAY_AUTH_TOKEN_PATH are unset and ~/.ray/auth_token does not exist). {_AUTH_HELP}"
        )
    token, source = found
    return {"Authorization": f"Bearer {token}"}, source


def _probe(url: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens there (requests has no timeout)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # e.g. ray:// or provider modules: Ray resolves those itself.
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SubmitError(f"{url!r} is not a valid job server address") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise SubmitError(_unreachable(url, e)) from None


def _unreachable(url: str, err: BaseException) -> str:
    return (
        f"cannot reach a Ray job server at {url} ({err}). Is the head running, and is this its "
        "dashboard address (`ray start --head --dashboard-host 0.0.0.0`, port 8265 by "
        "default; not the GCS port 6379)?"
    )


@contextlib.contextmanager
def _explicit_address() -> Iterator[None]:
    """Hide RAY_ADDRESS / RAY_API_SERVER_ADDRESS while the client is built: Ray lets them
    override the address passed in, which would silently send jobs to another cluster."""
    with _env_lock:
        saved = {v: os.environ.pop(v) for v in _ADDRESS_ENV_VARS if v in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


def _client(url: str) -> JobSubmissionClient:
    """A job client for `url`, with our token header; connection and auth checked."""
    headers, source = _auth_headers()
    _probe(url)
    from ray.job_submission import JobSubmissionClient

    with _translate_errors(url, token_source=source), _explicit_address():
        return JobSubmissionClient(url, headers=headers)


@contextlib.contextmanager
def _translate_errors(url: str, job_id: str | None = None,
                      token_source: str | None = None) -> Iterator[None]:  # fmt: skip
    """Turn Ray's and requests' errors into `SubmitError`s that say what to do."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except SubmitError:
        raise
    except AuthenticationError as e:
        raise SubmitError(_auth_message(url, str(e.message), token_source)) from None
    except (ConnectionError, requests.exceptions.ConnectionError) as e:
        raise SubmitError(_unreachable(url, e)) from None
    except requests.exceptions.RequestException as e:
        raise SubmitError(f"request to the Ray job server at {url} failed: {e}") from None
    except RuntimeError as e:
        text = str(e)
        if job_id is not None and ("404" in text or "does not exist" in text):
            raise SubmitError(f"no job {job_id!r} on the Ray cluster at {url}") from None
        raise SubmitError(f"the Ray job server at {url} refused: {text}") from None


def _auth_message(url: str, detail: str, token_source: str | None) -> str:
    if detail.startswith("Authentication failed") or "403" in detail:
        sent = f" from {token_source}" if token_source else ""
        what = f"rejected the authentication token{sent} (wrong token for this cluster)"
    else:
        what = "requires token authentication (on by default since Ray 2.60) and no token was sent"
        if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
            what += " because RAY_AUTH_MODE is not 'token'"
    return f"the Ray cluster at {url} {what}. {_AUTH_HELP}"


def _status_str(status: Any) -> str:
    return str(getattr(status, "value", status))


def _status(client: JobSubmissionClient, url: str, job_id: str) -> str:
    with _translate_errors(url, job_id):
        return _status_str(client.get_job_status(job_id))


def _follow(
    client: JobSubmissionClient,
    url: str,
    job_id: str,
    *,
    timeout_s: float | None,
    on_log: Callable[[str], None] | None,
    poll_s: float = 1.0,
) -> str:
    """Poll status and logs until the job ends or `timeout_s` passes; the last status.

    Polling (rather than the websocket `tail_job_logs`) needs no event loop, so it works from
    any caller, including one already inside asyncio.
    """
    emit = on_log or (lambda text: logger.info("[%s] %s", job_id, text.rstrip("\n")))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = 0
    wait = poll_s
    while True:
        status = _status(client, url, job_id)
        with _translate_errors(url, job_id):
            logs = str(client.get_job_logs(job_id) or "")
        if len(logs) < seen:  # should not happen; start over rather than lose lines
            seen = 0
        if len(logs) > seen:
            emit(logs[seen:])
            seen = len(logs)
            wait = poll_s
        else:  # quiet job: back off to at most 10 s between polls (logs come back whole)
            wait = min(max(wait * 1.5, poll_s), 10.0)
        if status in TERMINAL_STATUSES:
            logger.info("job %s on %s: %s", job_id, url, status)
            return status
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return status
            wait = min(wait, left)
        time.sleep(wait)


def _tail(logs: str, lines: int = 40) -> str:
    return "\n".join(logs.rstrip("\n").splitlines()[-lines:])
