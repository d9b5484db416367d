"""A launcher: a process forked from custody before it has a thread or a registry connection, which
forks reader groups when a sync asks for them.

A group forked from it starts with every module custody imported already in memory; a new
interpreter spends about 0.3 s of CPU importing them again (pydantic, tldextract and requests,
phonenumbers) for every sync that starts readers: each scheduled sync of the service. The writer
itself cannot be forked for that: by then it has threads (read-ahead, the progress bar, the
service's scheduler) whose locks a child could inherit held. The launcher is forked while there are
none, and does nothing but fork.

It lives as long as the process that started it: a closed control socket, SIGKILL of that process
included, ends it. Each group leads a process group of its own, so a Ctrl-C at the terminal reaches
only the writer, which stops its readers itself.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress

log = logging.getLogger("custody.launcher")
Group = Callable[[Sequence[int]], None]
_PR_SET_NAME = 15
_PID_BYTES = 8
_MOST_DESCRIPTORS = 256


class Launcher:
    """The writer's end: hands a group's pipe descriptors to the launcher, which forks the group."""

    def __init__(self, control: socket.socket, pid: int) -> None:
        self._control = control
        self.pid = pid
        self._owner = os.getpid()
        self._lock = threading.Lock()

    def launch(self, descriptors: Sequence[int]) -> tuple[int, int]:
        """Fork a group that is given `descriptors`: its leader's pid, and a pidfd to watch it by,
        opened before another launch could reap it. OSError when the launcher is gone."""
        with self._lock:
            socket.send_fds(self._control, [b"L"], list(descriptors))
            answer = self._control.recv(_PID_BYTES, socket.MSG_WAITALL)
            if len(answer) != _PID_BYTES:
                raise ConnectionResetError("the reader launcher is gone")
            pid = int.from_bytes(answer, "little")
            return pid, os.pidfd_open(pid)

    def belongs_here(self) -> bool:
        """False in a process forked from the one that started the launcher."""
        return os.getpid() == self._owner

    def stop(self) -> None:
        """End the launcher and wait for it; groups it launched live on until their pipes close."""
        self._control.close()
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def fork_launcher(group: Group) -> Launcher | None:
    """Fork a launcher whose groups run `group(descriptors)`; None when this process already has
    another thread, which a fork could copy mid-lock."""
    if threading.active_count() > 1:
        log.debug("not forking a reader launcher: this process has threads")
        return None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        ours.close()
        _serve_launches(theirs, group)
    theirs.close()
    return Launcher(ours, pid)


def name_process(name: str) -> None:
    """The name `ps` and `top` show for this process (at most 15 bytes)."""
    ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _serve_launches(control: socket.socket, group: Group) -> None:
    """The launcher's life; never returns."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.setpgid(0, 0)
        name_process("custody-launch")
        while _launch_next(control, group):
            pass
    except BaseException:
        log.exception("reader launcher failed")
        code = 1
    finally:
        os._exit(code)


def _launch_next(control: socket.socket, group: Group) -> bool:
    """Fork the next group asked for; False once the writer is gone. Leaders that ended are reaped
    only here, before the next launch: never before the writer has opened a pidfd for them."""
    try:
        message, descriptors, _, _ = socket.recv_fds(control, 1, _MOST_DESCRIPTORS)
    except OSError:
        return False
    if not message:
        return False
    _reap_ended()
    leader = _fork_group(control, group, descriptors)
    for descriptor in descriptors:
        os.close(descriptor)
    try:
        control.sendall(leader.to_bytes(_PID_BYTES, "little"))
    except OSError:
        return False
    return True


def _fork_group(control: socket.socket, group: Group, descriptors: list[int]) -> int:
    pid = os.fork()
    if pid:
        os.setpgid(pid, pid)
        return pid
    code = 0
    try:
        control.close()
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        group(descriptors)
    except BaseException:
        log.exception("reader group failed")
        code = 1
    finally:
        os._exit(code)


def _reap_ended() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return
