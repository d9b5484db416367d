"""The processes custody starts (launcher, readers) as tests find them in /proc."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


def named_descendants(parent: int, name: str) -> list[int]:
    """`parent`'s descendants named `name`, the name custody's processes give themselves for `ps`."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        pid = int(status.parent.name)
        names[pid] = fields.get("Name", "").strip()
        children.setdefault(int(fields.get("PPid", "0")), []).append(pid)
    descendants, waiting = [], list(children.get(parent, []))
    while waiting:
        pid = waiting.pop()
        descendants.append(pid)
        waiting += children.get(pid, [])
    return [pid for pid in descendants if names[pid] == name]


def gone(pids: Iterable[int], seconds: float = 15) -> bool:
    """Whether every process in `pids` has exited within `seconds`."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    """Running, and not merely a zombie waiting for its parent to read its exit code."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
