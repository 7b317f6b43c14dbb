"""Run the `syncworker` console script the way an operator does: as a separate process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

# The console script installed next to this interpreter (.venv/bin/syncworker).
SYNCWORKER = Path(sys.executable).with_name("syncworker")


def cli_env(settings: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """This environment without any SYNCWORKER_ setting, plus `settings` and `extra`.

    Wide, unbuffered output: help and tables are not wrapped at 80 columns, and a long-running
    process's first line reaches its log at once.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCWORKER_")}
    return {**base, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(settings or {}), **extra}


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYNCWORKER), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Background:
    """A long-running `syncworker …` process in its own process group, logging to a file."""

    def __init__(self, args: list[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(SYNCWORKER), *args],
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_path.parent,  # anything it writes (pid or schedule files) lands there
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_for_log(self, pattern: str, *, timeout: float = 30.0) -> re.Match[str]:
        """The first match of `pattern` in the log; fails early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if not self.running():
                break
            time.sleep(0.1)
        raise AssertionError(
            f"`syncworker {' '.join(self.args)}` never logged {pattern!r} "
            f"(exit code {self.process.poll()}); its log:\n{self.log()[-3000:]}"
        )

    def terminate(self, *, timeout: float = 40.0) -> int:
        """SIGTERM to the main process only (as `docker stop` does); its exit code."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """Whatever is left of the whole process group, at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def background(*args: str, env: Mapping[str, str], log_path: Path) -> Iterator[Background]:
    """Start `syncworker *args`; stop it (politely, then not) when the block ends."""
    process = Background(list(args), env=env, log_path=log_path)
    try:
        yield process
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.terminate(timeout=20)
        process.kill()
