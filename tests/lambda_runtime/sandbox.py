"""Start one execution environment: ``python -m awslambdaric <handler>`` as Lambda does.

The process gets what Lambda's sandbox gives it, as far as a test on this machine can:

* the environment Lambda sets (documented under "Defined runtime environment variables")
  plus the function's own variables; the credentials are fake and each AWS endpoint
  is a loopback server (``AWS_ENDPOINT_URL*``, which Lambda does not set);
* ``PYTHONPATH`` = task root, then the runtime directory (awslambdaric, boto3), as the
  base image's bootstrap has it; the working directory is the task root;
* a non-root user (uid/gid 65534 when the tests run as root, as CI does; otherwise the
  tests' own user, for whom the a-w trees are just as read-only);
* the task root, runtime directory and interpreter read-only; ``HOME`` a read-only empty
  folder; ``TMPDIR`` a private folder of the user's. The machine's ``/tmp`` stays
  writable, as Lambda's ``/tmp`` is; so do other world-writable folders (``/var/tmp``,
  ``/dev/shm``), which Lambda does not have: a write there would pass here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lambda_runtime.runtime_api import Outcome, RuntimeAPI

SANDBOX_UID = 65534
REGION = "eu-west-1"
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Function:
    name: str
    task_root: Path
    handler: str
    environment: Mapping[str, str]
    memory_mb: int = 1024
    timeout_s: int = 30
    # Where the code came from, for the env Lambda sets: "Image" or a managed runtime.
    runtime: str = "python3.12"


class Environment:
    """A running execution environment; ``invoke`` sends one event through the real RIC."""

    def __init__(self, api: RuntimeAPI, process: subprocess.Popen[bytes], log: Path) -> None:
        self.api = api
        self.process = process
        self.log_path = log

    def invoke(self, event: Any, wait_s: float = 60.0, invoked_arn: str | None = None) -> Outcome:
        return self.api.invoke(
            event,
            wait_s=wait_s,
            alive=lambda: self.process.poll() is None,
            invoked_arn=invoked_arn,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def lambda_env(function: Function, api: str, runtime_dir: Path, lang: Path) -> dict[str, str]:
    lang_root = lang.parents[1]
    execution_env = (
        "AWS_Lambda_Image" if function.runtime == "Image" else (f"AWS_Lambda_{function.runtime}")
    )
    return {
        "PATH": f"{lang_root}/bin:/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": f"{lang_root}/lib:{runtime_dir}:{function.task_root}",
        "PYTHONPATH": f"{function.task_root}:{runtime_dir}",
        "LAMBDA_TASK_ROOT": str(function.task_root),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": execution_env,
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }


def _private_dir(uid: int | None, mode: int) -> Path:
    # Under the machine's /tmp, not pytest's tmp_path: that is root's (mode 700).
    path = Path(tempfile.mkdtemp(prefix="lambda-sandbox-"))
    if uid is not None:
        os.chown(path, uid, uid)
    path.chmod(mode)
    return path


@contextmanager
def start(
    function: Function,
    *,
    runtime_dir: Path,
    lang: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Environment]:
    """Start the environment (init runs at once, as on Lambda); stop it on exit."""
    uid = SANDBOX_UID if os.geteuid() == 0 else None
    tmp = _private_dir(uid, 0o700)
    home = _private_dir(None, 0o555)
    log = Path(tempfile.mkdtemp(prefix="lambda-logs-")) / "output.log"
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.name}"
    with RuntimeAPI(arn, function.timeout_s) as api, log.open("wb") as out:
        env = {
            **lambda_env(function, api.address, runtime_dir, lang),
            **function.environment,
            **(extra_env or {}),
            "HOME": str(home),
            "TMPDIR": str(tmp),
        }
        process = subprocess.Popen(
            [str(lang), "-m", "awslambdaric", function.handler],
            cwd=function.task_root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=uid,
            group=uid,
            extra_groups=[] if uid is not None else None,
        )
        try:
            yield Environment(api, process, log)
        finally:
            process.kill()
            process.wait(timeout=10)
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(log.parent, ignore_errors=True)
