"""IMAP sync speed on the Enron mailboxes in a private Dovecot; prints one JSON object.

Compares custody's full sync into SQLite with a bare imapclient loop fetching the same header
fields of the same folders (what the server allows), with mbsync mirroring the same folders to a
local Maildir (what an admin would do by hand; skipped, with the reason in the JSON, where mbsync
is not installed), and times a resync with nothing new. The IMAP connector alone (no registry) is
measured too, to show where custody's time goes. Each measurement runs in its own process so its
peak RSS is its own. CPU is counted twice: the whole machine's, and that of the measured process
tree plus Dovecot's (`cpu_seconds_with_server`), which other work on a shared machine leaves alone.

    python bench/imap_sync.py [--workdir DIR] [--profile FILE]   # DIR keeps the loaded Dovecot between runs

One bare pass warms Dovecot's caches first; then the bare loop, custody's full sync and its
in-process sync alternate for five rounds. Each ratio to the bare loop is the median of the five
rounds' own ratios, each against the bare run of its round, which shares its machine's load (this
machine varies by a fifth from one run to the next); every round's ratio is printed beside it.
`--profile FILE` adds one more in-process sync under cProfile (every thread, by its own CPU time),
apart from the timed ones, and writes its pstats to FILE.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from imapclient import IMAPClient  # noqa: E402

from bench.cloud import profiled  # noqa: E402
from config.policy import Policy  # noqa: E402
from config.settings import Settings  # noqa: E402
from connectors.imap import (  # noqa: E402
    FETCH_ITEMS,
    ImapConnector,
    ImapSettings,  # noqa: E402
    uid_chunks,
)
from daemon.sync.engine import sync_sources  # noqa: E402
from daemon.sync.readers import reader_launcher  # noqa: E402
from registry.store import open_registry  # noqa: E402
from tests.servers.dovecot import DovecotServer, require_dovecot  # noqa: E402

ENRON = PROJECT.parent / "shared" / "corpus" / "enron" / "maildir"
FOLDERS = {"inbox": "INBOX", "sent": "Sent", "_sent_mail": "_sent_mail", "sent_items": "sent_items"}
EXTRA_FOLDERS = ["_sent_mail", "sent_items"]
BATCH = 500
WORKERS = Settings().sync_workers
ROUNDS = 5
PR_SET_CHILD_SUBREAPER = 36
POLICY = Policy(company_domains=["enron.com"])
MBSYNC_MISSING = "mbsync not found on PATH: its comparison is skipped (Debian and Ubuntu: apt-get install isync)"


def password(user: str) -> str:
    return f"bench-{user}"


def load_corpus(server: DovecotServer) -> int:
    """APPEND every Enron message once; a marker file makes later runs reuse the loaded server."""
    marker = server.root / "loaded.json"
    users = sorted(p.name for p in ENRON.iterdir() if p.is_dir())
    for user in users:
        server.add_user(user, password(user))
    if marker.exists():
        return int(json.loads(marker.read_text())["messages"])
    total = 0
    for user in users:
        for name, folder in FOLDERS.items():
            files = sorted((ENRON / user / name).iterdir()) if (ENRON / user / name).is_dir() else []
            server.append(user, folder, (path.read_bytes() for path in files))
            total += len(files)
    marker.write_text(json.dumps({"messages": total}))
    return total


def sources(port: int) -> list[ImapSettings]:
    return [
        ImapSettings(name=user, kind="imap", host="127.0.0.1", port=port, security="plain", username=user,
                     password=password(user), folders=EXTRA_FOLDERS)
        for user in sorted(p.name for p in ENRON.iterdir() if p.is_dir())
    ]


def measure_custody(port: int, server: int, database: Path, workers: int) -> dict[str, Any]:
    """Full sync of every mailbox as `custody sync` does it (readers forked by a launcher forked
    first, and the time to stop it counted), then a resync with nothing new, into one SQLite registry."""
    engine = open_registry(f"sqlite:///{database}")
    chosen = sources(port)
    settings = Settings(sources=chosen, batch_size=BATCH, sync_workers=workers)
    started, cpu, busy = time.perf_counter(), time.process_time(), machine_busy_seconds()
    tree, served = tree_cpu_seconds(), server_cpu_seconds(server)
    with reader_launcher(workers > 0):
        messages = sum(r.messages for r in sync_sources(engine, settings, POLICY, chosen))
    full, full_cpu = time.perf_counter() - started, time.process_time() - cpu
    full_busy = machine_busy_seconds() - busy
    reap_readers()
    full_tree, full_served = tree_cpu_seconds() - tree, server_cpu_seconds(server) - served
    started = time.perf_counter()
    with reader_launcher(workers > 0):
        again = sum(r.messages for r in sync_sources(engine, settings, POLICY, chosen))
    resync = time.perf_counter() - started
    return {"messages": messages, "seconds": full, "cpu_seconds": full_cpu, "machine_cpu_seconds": full_busy,
            "tree_cpu_seconds": full_tree, "server_cpu_seconds": full_served,
            "resync_messages": again, "resync_seconds": resync, "workers": workers}


def machine_busy_seconds() -> float:
    """CPU time of the whole machine (custody's readers, Dovecot, everything) from /proc/stat, so a
    run that spreads its work over processes is charged for all of it."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds() -> float:
    """CPU of this process and of the descendants it has reaped (its reader processes): unlike the
    machine's, untouched by whatever else runs on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def reap_readers() -> None:
    """Reap the readers the reader interpreter forked: it is stopped before it can wait for them, so
    they are orphaned to this process, a child subreaper, and only a reaped child's CPU is counted."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.01)
        except ChildProcessError:
            return


def server_cpu_seconds(master: int) -> float:
    """CPU of the Dovecot whose master process is `master`: every process of its session, with the
    imap processes each has reaped."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _read(stat).rpartition(")")[2].split()
        if len(fields) > 14 and int(fields[3]) == master:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def dovecot_master(server: DovecotServer) -> int:
    """The pid of `server`'s master process, found by its config file."""
    config = str(server.root / "dovecot.conf").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        arguments = _read_bytes(cmdline).split(b"\0")
        if config in arguments and Path(arguments[0].decode()).name == "dovecot":
            return int(cmdline.parent.name)
    raise RuntimeError(f"no dovecot process runs {config.decode()}")


def measure_connector(port: int) -> dict[str, Any]:
    """The IMAP connector alone (fetch and header parsing, no registry), to split custody's time."""
    started, cpu = time.perf_counter(), time.process_time()
    messages = sum(len(batch.records) for source in sources(port) for batch in ImapConnector(source).sync(None))
    return {"messages": messages, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


def measure_bare(port: int, server: int) -> dict[str, Any]:
    """The same folders and header fields, fetched in the same batch size, parsed by imapclient, kept nowhere."""
    started, cpu, busy = time.perf_counter(), time.process_time(), machine_busy_seconds()
    served = server_cpu_seconds(server)
    messages = 0
    for source in sources(port):
        with IMAPClient("127.0.0.1", port=port, ssl=False) as client:
            client.login(source.username, source.secret())
            for folder in ["INBOX", "Sent", *EXTRA_FOLDERS]:
                if not client.folder_exists(folder):
                    continue
                client.select_folder(folder, readonly=True)
                for chunk in uid_chunks(client.search(["ALL"]), BATCH):
                    messages += len(client.fetch(chunk, FETCH_ITEMS))
    return {"messages": messages, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "machine_cpu_seconds": machine_busy_seconds() - busy, "tree_cpu_seconds": time.process_time() - cpu,
            "server_cpu_seconds": server_cpu_seconds(server) - served}


def measure_mbsync(port: int, target: Path) -> dict[str, Any]:
    """mbsync pulls whole messages of the same folders into a fresh local Maildir."""
    lines = []
    for source in sources(port):
        (target / source.name).mkdir(parents=True)
        lines += [
            f"IMAPAccount {source.name}", "Host 127.0.0.1", f"Port {port}", f"User {source.username}",
            f"Pass {source.secret()}", "SSLType None", "AuthMechs LOGIN", "",
            f"IMAPStore {source.name}-far", f"Account {source.name}", "",
            f"MaildirStore {source.name}-near", f"Path {target / source.name}/", f"Inbox {target / source.name}/INBOX",
            "SubFolders Verbatim", "",
            f"Channel {source.name}", f"Far :{source.name}-far:", f"Near :{source.name}-near:",
            "Patterns INBOX Sent " + " ".join(EXTRA_FOLDERS), "Create Near", "Sync Pull", "SyncState *", "",
        ]
    config = target / "mbsyncrc"
    config.write_text("\n".join(lines))
    started = time.perf_counter()
    subprocess.run(["mbsync", "-q", "-c", str(config), "-a"], check=True)
    seconds = time.perf_counter() - started
    messages = sum(1 for path in target.rglob("*") if path.parent.name in ("cur", "new") and path.is_file())
    return {"messages": messages, "seconds": seconds}


class TreeMemory:
    """Peak summed RSS of a process and its descendants (custody's reader processes), sampled. Pages
    that readers forked by the launcher share with it and with each other count once per process, so
    this overstates what the machine holds (PSS would not, but reading it walks every page of the
    processes at each sample, CPU that the machine-CPU figures would count)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mb = max(self.peak_mb, sum(_rss_mb(pid) for pid in _tree(self.root)))


def _tree(root: int) -> list[int]:
    """The process and its descendants (the readers it started and those they forked), found through
    each process's children rather than a scan of all of /proc, which would cost the measured
    process more than the sampling is worth."""
    children = [int(pid) for task in Path(f"/proc/{root}/task").glob("*/children") for pid in _read(task).split()]
    return [root, *(pid for child in children for pid in _tree(child))]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _rss_mb(pid: int) -> float:
    line = next((x for x in _read(Path(f"/proc/{pid}/status")).splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def run_measurement(name: str, port: int, server: int, scratch: Path, profile: Path | None = None) -> dict[str, Any]:
    if name == "custody_profiled":
        with profiled(profile):
            result = measure_custody(port, server, scratch / f"{name}.db", 0)
    elif name.startswith("custody"):
        become_subreaper()
        result = measure_custody(port, server, scratch / f"{name}.db", 0 if name == "custody_in_process" else WORKERS)
    elif name == "connector":
        result = measure_connector(port)
    elif name == "bare":
        result = measure_bare(port, server)
    else:
        result = measure_mbsync(port, scratch / "mbsync")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(peak_rss_mb=round(own.ru_maxrss / 1024, 1), children_peak_rss_mb=round(children.ru_maxrss / 1024, 1),
                  children_cpu_seconds=children.ru_utime + children.ru_stime)
    return result


def become_subreaper() -> None:
    """Adopt the orphaned descendants (readers forked by a reader interpreter) so `reap_readers` can count them."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def in_own_process(name: str, server: DovecotServer, scratch: Path, profile: Path | None = None) -> dict[str, Any]:
    """Run one measurement in a new process, its memory sampled from here: a sampling thread inside
    it would take CPU and the interpreter's lock from what it measures."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--measure", name, "--port", str(server.port), "--server-pid",
         str(dovecot_master(server)), "--scratch", str(scratch), *(["--profile", str(profile)] if profile else [])],
        stdout=subprocess.PIPE, text=True,
    )
    with TreeMemory(process.pid) as memory:
        output, _ = process.communicate()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args)
    return {**json.loads(output), "tree_peak_rss_mb": round(memory.peak_mb, 1)}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time, with every run's seconds beside it: one run on a shared
    machine can be slowed by anything."""
    chosen = dict(sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2])
    chosen["all_seconds"] = [round(run["seconds"], 2) for run in runs]
    return chosen


def paired(customs: list[dict[str, Any]], bares: list[dict[str, Any]], measure: Callable[[dict[str, Any]], float]
           ) -> dict[str, Any]:
    """The median over rounds of `measure(custom) / measure(bare)`, each custody run against the bare
    run of its own round, with every round's ratio."""
    ratios = sorted(round(measure(custom) / measure(bare), 2) for custom, bare in zip(customs, bares, strict=True))
    return {"median": ratios[len(ratios) // 2], "rounds": ratios}


def summary(result: dict[str, Any], peak_rss_mb: float, cpu_seconds: float) -> dict[str, Any]:
    """Wall time can be swamped by other work on a shared machine; client CPU seconds cannot."""
    return {"messages": result["messages"], "seconds": round(result["seconds"], 2),
            "messages_per_second": round(result["messages"] / result["seconds"]),
            "client_cpu_seconds": round(cpu_seconds, 2), "peak_rss_mb": peak_rss_mb}


def with_server(result: dict[str, Any]) -> float:
    """The client's process tree and Dovecot: the machine CPU a run costs, without what other work
    on a shared machine spends meanwhile."""
    return float(result["tree_cpu_seconds"] + result["server_cpu_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "custody-bench-imap")
    parser.add_argument("--measure", choices=["custody", "custody_in_process", "custody_profiled", "connector", "bare",
                                              "mbsync"])
    parser.add_argument("--profile", type=Path, help="also profile one in-process sync into this pstats file")
    parser.add_argument("--port", type=int)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--scratch", type=Path)
    args = parser.parse_args()
    if args.measure:
        gc.freeze()  # as the custody command does once its modules are loaded
        print(json.dumps(run_measurement(args.measure, args.port, args.server_pid, args.scratch, args.profile)))
        return
    if not ENRON.is_dir():
        print(json.dumps({"skipped": f"Enron corpus not found at {ENRON}"}))
        return
    require_dovecot()
    if not shutil.which("mbsync"):
        print(f"imap_sync: {MBSYNC_MISSING}", file=sys.stderr)
    server = DovecotServer(args.workdir / "dovecot", rawlog=False)
    server.start()
    scratch = Path(tempfile.mkdtemp(prefix="custody-bench-imap-"))
    try:
        started = time.perf_counter()
        loaded = load_corpus(server)
        load_seconds = time.perf_counter() - started
        in_own_process("bare", server, scratch)
        bares, custodies, in_processes = [], [], []
        for round_number in range(ROUNDS):
            bares.append(in_own_process("bare", server, scratch))
            custodies.append(in_own_process("custody", server, scratch / f"round{round_number}"))
            in_processes.append(in_own_process("custody_in_process", server, scratch / f"round{round_number}"))
        bare, custody, in_process = median_run(bares), median_run(custodies), median_run(in_processes)
        connector = in_own_process("connector", server, scratch)
        mbsync = in_own_process("mbsync", server, scratch) if shutil.which("mbsync") else None
        if args.profile:
            in_own_process("custody_profiled", server, scratch / "profiled", args.profile.resolve())
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({
        "corpus_messages": loaded,
        "load_seconds": round(load_seconds, 2),
        "custody_full_sync": {**summary(custody, custody["tree_peak_rss_mb"], custody["cpu_seconds"]),
                              "all_seconds": custody["all_seconds"],
                              "reader_processes": custody["workers"],
                              "machine_cpu_seconds": round(custody["machine_cpu_seconds"], 2),
                              "cpu_seconds_with_server": round(with_server(custody), 2)},
        "custody_in_process": {**summary(in_process, in_process["tree_peak_rss_mb"], in_process["cpu_seconds"]),
                               "all_seconds": in_process["all_seconds"]},
        "connector_only": summary(connector, connector["peak_rss_mb"], connector["cpu_seconds"]),
        "bare_imapclient": {**summary(bare, bare["peak_rss_mb"], bare["cpu_seconds"]),
                            "all_seconds": bare["all_seconds"],
                            "machine_cpu_seconds": round(bare["machine_cpu_seconds"], 2),
                            "cpu_seconds_with_server": round(with_server(bare), 2)},
        "mbsync": summary(mbsync, mbsync["children_peak_rss_mb"], mbsync["children_cpu_seconds"]) if mbsync
                  else {"skipped": MBSYNC_MISSING},
        "resync_nothing_new": {"seconds": round(custody["resync_seconds"], 3),
                               "messages": custody["resync_messages"]},
        "ratios": {
            "custody_over_bare": paired(custodies, bares, lambda run: run["seconds"]),
            "custody_over_mbsync": round(custody["seconds"] / mbsync["seconds"], 2) if mbsync else None,
            "custody_in_process_over_bare": paired(in_processes, bares, lambda run: run["seconds"]),
            "custody_over_bare_machine_cpu": paired(custodies, bares, lambda run: run["machine_cpu_seconds"]),
            "custody_over_bare_cpu_with_server": paired(custodies, bares, with_server),
            "connector_over_bare": round(connector["seconds"] / bare["seconds"], 2),
            "connector_over_bare_cpu": round(connector["cpu_seconds"] / bare["cpu_seconds"], 2),
        },
        "load_average": os.getloadavg()[0],
        **({"profile": str(args.profile)} if args.profile else {}),
    }, indent=2))


if __name__ == "__main__":
    main()
