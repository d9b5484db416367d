"""`custody` commands as real processes without paying for a new interpreter each time.

Importing custody takes a Python process seconds of CPU; the crash tests start hundreds of commands
to SIGKILL them at many points. So one server process imports `daemon.cli.app` once and forks a
child per command: each child is a process of its own that runs the command line from the start
(config, registry, work) and exits, or dies, as `custody ...` would. Only the imports are shared.

Run as `python -m tests.support.forks`, the server reads one JSON request per line on stdin and
answers `started PID` and, when that child ends, `exited PID CODE` (a negative code for a signal).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from typer import Typer

PROJECT = Path(__file__).resolve().parents[2]


class ForkedCommand:
    """One forked `custody` command; the subset of `subprocess.Popen` the crash tests use."""

    def __init__(self, forks: CustodyForks, pid: int, stdout: Path, stderr: Path) -> None:
        self.forks = forks
        self.pid = pid
        self._stdout = stdout
        self._stderr = stderr

    @property
    def returncode(self) -> int | None:
        return self.forks.exit_code(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.forks.wait(self.pid, timeout)

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """(stdout, stderr) once the command ended; a command killed before it opened them wrote nothing."""
        self.wait(timeout)
        return _written(self._stdout), _written(self._stderr)


def _written(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


class CustodyForks:
    """The test side of the fork server: starts commands, learns how each ended."""

    def __init__(self) -> None:
        self._outputs = Path(tempfile.mkdtemp(prefix="custody-forks-"))
        self._server = subprocess.Popen([sys.executable, "-m", "tests.support.forks"], cwd=PROJECT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._changed = threading.Condition()
        self._started: list[int] = []
        self._exited: dict[int, int] = {}
        self._requests = 0
        self._starting = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def start(self, *args: str) -> ForkedCommand:
        """Fork `custody ARGS...` in the project directory, its output in files read back by `communicate`."""
        with self._starting, self._changed:
            self._requests += 1
            stdout, stderr = (self._outputs / f"{self._requests}.{name}" for name in ("out", "err"))
            assert self._server.stdin is not None
            self._server.stdin.write(json.dumps(
                {"args": list(args), "stdout": str(stdout), "stderr": str(stderr)}) + "\n")
            self._server.stdin.flush()
            self._changed.wait_for(lambda: self._started or self._server.poll() is not None)
            if not self._started:
                raise RuntimeError(f"the fork server exited with {self._server.returncode}")
            return ForkedCommand(self, self._started.pop(), stdout, stderr)

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            return self._exited.get(pid)

    def wait(self, pid: int, timeout: float | None = None) -> int:
        with self._changed:
            if not self._changed.wait_for(lambda: pid in self._exited, timeout):
                raise subprocess.TimeoutExpired(f"custody (pid {pid})", timeout or 0)
            return self._exited[pid]

    def close(self) -> None:
        """End the server (its stdin closes) once every command it started has ended."""
        assert self._server.stdin is not None
        self._server.stdin.close()
        self._server.wait()
        self._reader.join()
        shutil.rmtree(self._outputs, ignore_errors=True)

    def _read(self) -> None:
        assert self._server.stdout is not None
        for line in self._server.stdout:
            event, pid, *code = line.split()
            with self._changed:
                if event == "started":
                    self._started.append(int(pid))
                else:
                    self._exited[int(pid)] = int(code[0])
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()


def serve() -> None:
    """Fork one child per request until stdin closes, then wait for the children still running."""
    from daemon.cli.app import app  # the expensive part, paid once

    running: dict[int, int] = {}  # pidfd -> pid
    pending = b""
    reading = True
    while reading or running:
        ready, _, _ = select.select(([0] if reading else []) + list(running), [], [])
        for fd in ready:
            if fd != 0:
                pid = running.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                os.write(1, f"exited {pid} {os.waitstatus_to_exitcode(status)}\n".encode())
                continue
            chunk = os.read(0, 65536)
            reading = bool(chunk)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    run(app, request["args"], request["stdout"], request["stderr"], list(running))
                running[os.pidfd_open(pid)] = pid
                os.write(1, f"started {pid}\n".encode())


def run(app: Typer, args: list[str], stdout: str, stderr: str, inherited: list[int]) -> None:
    """In the child: the command's own stdin, stdout and stderr, then the command line as `custody`
    runs it; its SystemExit (or exception) ends this process like any interpreter's."""
    for fd in inherited:
        os.close(fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    sys.argv = ["custody", *args]
    sys.exit(app(args, prog_name="custody"))


if __name__ == "__main__":
    serve()
