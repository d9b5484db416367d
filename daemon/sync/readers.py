"""Reader processes: each reads one source at a time and interprets it into fact batches.

Parsing headers and applying the identity policy are most of a sync's CPU. In their own processes
they run beside the registry writes instead of taking turns with them under one GIL, and several
mailboxes are read at once. Readers never open the registry: the one writer stores each batch with
its cursor, so a reader that dies loses nothing that was committed and commits nothing half-done.

A sync's readers are one process group: its leader prepares what they share and forks the others.
The leader is forked by the launcher (`daemon/sync/launcher.py`) that custody's syncing commands
fork before they have a thread, with every module already imported; without one it is a new
interpreter (not multiprocessing), which imports the reading code first. Each reader speaks pickled
tasks and events over its own pair of pipes and exits on its own when the writer is gone (SIGKILL
included), at its next send or receive.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from config.policy import Policy
from connectors.base import Connector, SourceSettings
from connectors.errors import CursorInvalid
from connectors.index import connector_class, open_connector
from connectors.prefetch import Prefetched
from connectors.records import Batch, DirectoryEvent
from daemon.logs import configure_logging
from daemon.sync.collection import fewer_collections
from daemon.sync.failures import Failure, classify
from daemon.sync.launcher import Launcher, fork_launcher, name_process
from policies.identity import Identity, KnownRep, warm_public_suffixes
from registry.facts import FactBatch
from registry.states import SourceStatus

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("custody.readers")
_EXIT_SECONDS = 5
EventKind = Literal["ready", "batch", "done", "failed"]
_launcher: Launcher | None = None


@dataclass(frozen=True)
class ReadTask:
    source: SourceSettings
    cursor: dict[str, Any] | None
    owner: str


@dataclass(frozen=True)
class ReadEvent:
    """What a reader reports: that it is up, a batch with the cursor after it, the end of a source,
    or why it failed."""

    kind: EventKind
    source: str
    facts: FactBatch | None = None
    cursor: dict[str, Any] | None = None
    items: int = 0
    failure: Failure | None = None
    directory: tuple[DirectoryEvent, ...] = ()


@dataclass(frozen=True)
class ReaderSetup:
    """What reading needs of the config. Not `Settings` itself: unpickling that would make every
    reader import pydantic-settings, a tenth of its start-up, for nothing."""

    batch_size: int
    log_level: str
    default_region: str
    reps: tuple[KnownRep, ...]
    policy: Policy
    kinds: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings, policy: Policy, kinds: Iterable[str] = ()) -> ReaderSetup:
        reps = tuple(KnownRep(r.email, r.name, tuple(r.personal_addresses), tuple(r.aliases)) for r in settings.reps)
        return cls(settings.batch_size, settings.log_level, settings.default_region, reps, policy, tuple(sorted(set(kinds))))

    def identity(self) -> Identity:
        return Identity(self.policy, self.reps, self.default_region)


def identity_for(settings: Settings, policy: Policy) -> Identity:
    return ReaderSetup.of(settings, policy).identity()


class SourceReading:
    """A source's batches as facts, each with the cursor that is valid once it is stored.

    A cursor the server no longer knows is dropped: an empty batch stores the empty cursor first,
    so a crash during the resync that follows starts it again instead of tripping on the old one;
    ingest is idempotent, so mail read again is not stored twice.

    `finish()` asks it to read no further, for a reader to continue from the last cursor stored. A
    connector that reads ahead still hands over what it has read or is reading: dropped, those
    batches would be fetched twice (a handed-over IMAP source fetched 500 UIDs again)."""

    def __init__(self, connector: Connector[SourceSettings], identity: Identity, task: ReadTask) -> None:
        self._connector = connector
        self._identity = identity
        self._task = task
        self._batches: Iterator[Batch] | None = None
        self.finishing = False
        self.cut = False

    def events(self) -> Iterator[ReadEvent]:
        name = self._task.source.name
        try:
            yield from self._read(self._task.cursor)
        except CursorInvalid as error:
            if not self._task.cursor:
                raise
            log.warning("source %s: its cursor is no longer valid (%s); reading it again from the start", name, error)
            yield ReadEvent("batch", name, FactBatch(), {})
            yield from self._read(None)

    def finish(self) -> None:
        """Read no new batch; `cut` tells, once the events end, whether the source was left unfinished."""
        self.finishing = True
        if isinstance(self._batches, Prefetched):
            self._batches.finish()

    def _read(self, cursor: dict[str, Any] | None) -> Iterator[ReadEvent]:
        if self.finishing:
            self.cut = True
            return
        self._batches = batches = self._connector.sync(cursor)
        try:
            for batch in batches:
                yield ReadEvent("batch", self._task.source.name, self._identity.interpret(batch, self._task.owner),
                                batch.cursor, len(batch.records) + len(batch.skipped),
                                directory=tuple(r for r in batch.records if isinstance(r, DirectoryEvent)))
                if self.finishing and not isinstance(batches, Prefetched):
                    self.cut = True
                    return
            self.cut = isinstance(batches, Prefetched) and batches.cut
        finally:
            self._batches = None


class ReaderPool:
    """`size` reader processes, one source each at a time, each talking over its own pair of pipes.

    A full pipe is the back-pressure: a reader waits while the writer is behind, so memory stays
    flat however large the mailboxes are.

    Not multiprocessing's forkserver (tried for issue 13, reading modules preloaded): each reader it
    forks first runs the caller's main module again, about 1 s of CPU per reader for the `custody`
    CLI on top of the 1.5 s preload, and no public API turns that off. Its readers also share the
    writer's process group, so a Ctrl-C landing during that import killed them before they could
    ignore it, and the Ctrl-C test failed.
    """

    def __init__(self, settings: Settings, policy: Policy, size: int, start_after: float = 0.0,
                 kinds: Iterable[str] = ()) -> None:
        """Readers start `start_after` seconds from now, at the first question asked of them after
        that: a sync done sooner, most resyncs, never pays their start-up (0.05–0.07 s of CPU for two
        readers forked by the launcher, 0.3 s as a new interpreter). They import the connectors of
        `kinds`, the source kinds the sync reads, once for all."""
        self._setup = _packed(ReaderSetup.of(settings, policy, kinds))
        self._size = size
        self._start_at = time.monotonic() + start_after
        self._readers: list[_Reader] = []
        self._reading: dict[int, str] = {}
        self._up: set[int] = set()
        self._start_when_due()

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def idle(self) -> bool:
        return not self._readers or len(self._reading) < len(self._readers)

    @property
    def starting(self) -> bool:
        """Whether an idle reader is still starting, or the readers are yet to start: only then is
        the writer better off reading a source itself than waiting for events."""
        return not self._readers or bool(self._starting_slots())

    def idle_and_up(self) -> bool:
        """Whether an idle reader has finished starting; never waits, so the writer can read a
        source itself meanwhile instead of waiting for the readers' imports. Starts the readers
        once they are due."""
        self._start_when_due()
        starting = [self._readers[slot].events for slot in self._starting_slots()]
        for connection in wait(starting, timeout=0) if starting else []:
            slot = next(i for i, reader in enumerate(self._readers) if reader.events is connection)
            try:
                self._note(slot, self._readers[slot].receive())
            except (EOFError, OSError):
                self._restart(slot)
        return any(slot not in self._reading for slot in self._up)

    def assign(self, task: ReadTask) -> None:
        """Hand a source to an idle reader, one that is up if there is one, restarting it first if it
        died while idle."""
        self._start_when_due(now=True)
        slot = min((i for i in range(len(self._readers)) if i not in self._reading), key=lambda i: i not in self._up)
        try:
            self._readers[slot].send(task)
        except OSError:
            self._restart(slot)
            self._readers[slot].send(task)
        self._reading[slot] = task.source.name

    def next_events(self, most: int, timeout: float | None = None) -> list[ReadEvent]:
        """The next reports, waiting for one (none if `timeout` seconds pass first), then taking those
        already waiting behind it (about `most`); a reader that died mid-source reports that source
        failed and is replaced."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[ReadEvent] = []
        while not events:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left < 0:
                return []
            events = self._received(left)
        while len(events) < most and (more := self._received(0)):
            events += more
        return events

    def _received(self, timeout: float | None) -> list[ReadEvent]:
        """One report from each reader that has one within `timeout` seconds (None: until one has)."""
        received = []
        ready = set(wait([reader.events for reader in self._readers], timeout))
        for slot, reader in enumerate(self._readers):
            if reader.events not in ready:
                continue
            try:
                event: ReadEvent = reader.receive()
            except (EOFError, OSError):
                died = self._replace(slot)
                if died is not None:
                    received.append(died)
                continue
            if self._note(slot, event):
                received.append(event)
        return received

    def close(self) -> None:
        """Stop every reader now, a forked one mid-fetch included: each started interpreter leads a
        process group of its own, which is also why a Ctrl-C at the terminal reaches only the writer."""
        for reader in self._readers:
            reader.interrupt()
        for reader in self._readers:
            reader.stop()
        for reader in self._readers:
            reader.flush_log()

    def _start_when_due(self, now: bool = False) -> None:
        if not self._readers and (now or time.monotonic() >= self._start_at):
            log.debug("starting %d reader processes", self._size)
            self._readers = _Reader.start(self._setup, self._size)

    def _starting_slots(self) -> list[int]:
        return [slot for slot in range(len(self._readers)) if slot not in self._up and slot not in self._reading]

    def _note(self, slot: int, event: ReadEvent) -> bool:
        """Track what `event` says of its reader; False for a reader's own news (it is up)."""
        if event.kind == "ready":
            log.debug("reader %d is up", slot)
            self._up.add(slot)
            return False
        if event.kind != "batch":
            self._reading.pop(slot, None)
        return True

    def _replace(self, slot: int) -> ReadEvent | None:
        code = self._restart(slot)
        name = self._reading.pop(slot, None)
        if name is None:
            return None
        how = "" if code is None else f" (exit code {code})"
        return ReadEvent("failed", name, failure=Failure(SourceStatus.FAILING, f"reader process died{how}"))

    def _restart(self, slot: int) -> int | None:
        code = self._readers[slot].stop()
        self._up.discard(slot)
        self._readers[slot] = _Reader.start(self._setup)[0]
        return code


@dataclass
class _Reader:
    tasks: Connection
    events: Connection
    leader: _Leader | None = None
    echo: threading.Thread | None = None

    @classmethod
    def start(cls, setup: bytes, count: int = 1) -> list[_Reader]:
        """`count` readers in one new process group, whose leader prepares what they share and forks
        the others; each reader gets its own pair of pipes, and the first the setup. The group is
        forked by this process's launcher when it has one, or is a new interpreter.

        `python -m daemon.sync.reader_process`, not multiprocessing: a child started by spawn or forkserver
        re-imports the caller's whole main module (the CLI, a test runner), which costs more than
        the reading it is started for. `-P` keeps a `daemon/` folder in the working directory from
        being imported instead of ours.
        """
        return cls._group(setup, count, _launched) or cls._group(setup, count, _interpreter)

    @classmethod
    def _group(cls, setup: bytes, count: int, leader_of: Callable[[list[int]], _Leader | None]) -> list[_Reader]:
        """The readers of a group whose leader `leader_of` starts with the readers' pipe ends and then
        the write end of their stderr; none when it cannot, with every pipe closed, so nothing it may
        have forked holds a pipe the next try uses."""
        pipes = [(os.pipe(), os.pipe()) for _ in range(count)]
        theirs = [fd for (task_read, _), (_, event_write) in pipes for fd in (task_read, event_write)]
        ours = [fd for (_, task_write), (event_read, _) in pipes for fd in (task_write, event_read)]
        log_read, log_write = os.pipe()
        leader = leader_of([*theirs, log_write])
        for fd in (*theirs, log_write):
            os.close(fd)
        if leader is None:
            for fd in (*ours, log_read):
                os.close(fd)
            return []
        readers = [cls(Connection(task_write, readable=False), Connection(event_read, writable=False))
                   for (_, task_write), (event_read, _) in pipes]
        readers[0].leader = leader
        readers[0].echo = threading.Thread(target=_echo, args=(os.fdopen(log_read, "rb"),), daemon=True)
        readers[0].echo.start()
        readers[0].tasks.send_bytes(setup)
        return readers

    def send(self, task: ReadTask) -> None:
        self.tasks.send_bytes(_packed(task))

    def receive(self) -> ReadEvent:
        event: ReadEvent = pickle.loads(self.events.recv_bytes())
        return event

    def interrupt(self) -> None:
        """Signal the process group of a reader this process started: it and the readers it forked."""
        if self.leader is not None:
            self.leader.interrupt()

    def stop(self) -> int | None:
        """Stop the reader; the exit code of a group leader this process started, when it can know it.

        A leader is stopped at once: between sources it holds nothing, and while starting it would
        otherwise finish its imports first. A forked reader is never starting, and with its pipes
        closed it exits at its next send or receive.
        """
        self.tasks.close()
        code = None if self.leader is None else self.leader.end()
        self.events.close()
        return code

    def flush_log(self) -> None:
        """Wait until the last log line of a stopped interpreter, and of the readers it forked, is copied."""
        if self.echo is not None:
            self.echo.join(_EXIT_SECONDS)


class _Leader(Protocol):
    """The process that leads a group of readers."""

    def interrupt(self) -> None: ...

    def end(self) -> int | None: ...


@dataclass
class _Interpreter:
    """A group leader started as a new interpreter, this process's child: its exit code is known."""

    process: subprocess.Popen[bytes]

    def interrupt(self) -> None:
        if self.process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def end(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class _Forked:
    """A group leader forked by the launcher, whose child it is: this process watches it through a
    pidfd, and only the launcher could learn its exit code."""

    pid: int
    pidfd: int

    def interrupt(self) -> None:
        if self._running():
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)

    def end(self) -> None:
        for stop in (signal.SIGTERM, signal.SIGKILL):
            if self._running():
                with suppress(ProcessLookupError):
                    os.kill(self.pid, stop)
                select.select([self.pidfd], [], [], _EXIT_SECONDS)
        os.close(self.pidfd)

    def _running(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]


def _interpreter(descriptors: list[int]) -> _Interpreter:
    *pipes, stderr = descriptors
    return _Interpreter(subprocess.Popen([sys.executable, "-P", "-m", "daemon.sync.reader_process", *map(str, pipes)],
                                         pass_fds=pipes, stdin=subprocess.DEVNULL, stderr=stderr, process_group=0))


def _launched(descriptors: list[int]) -> _Forked | None:
    """A group forked by this process's launcher; None without one, or when it is gone."""
    global _launcher
    if _launcher is None or not _launcher.belongs_here():
        return None
    try:
        pid, pidfd = _launcher.launch(descriptors)
    except OSError as error:
        log.warning("the reader launcher is gone (%s); readers start as a new interpreter", error)
        _launcher = None
        return None
    return _Forked(pid, pidfd)


@contextmanager
def reader_launcher(wanted: bool = True) -> Iterator[None]:
    """While it lasts, syncs of this process fork their readers from a launcher forked now, when
    `wanted` (syncs that start no reader are better off without it: each page of this process it
    shares, this process copies when it first writes there). Custody's commands that sync enter it
    once their modules are imported, before they start a thread or open the registry; in a process
    that has threads already, readers start as new interpreters."""
    global _launcher
    launcher = fork_launcher(_run_group) if wanted and _launcher is None else None
    if launcher is None:
        yield
        return
    _launcher = launcher
    try:
        yield
    finally:
        _launcher = None
        launcher.stop()


def _run_group(descriptors: Sequence[int]) -> None:
    """A group forked by the launcher: the pipes' descriptors as `reader_process` takes them, then its stderr."""
    *pipes, stderr = descriptors
    os.dup2(stderr, 2)
    os.close(stderr)
    pairs = [(Connection(task, writable=False), Connection(event, readable=False))
             for task, event in zip(pipes[::2], pipes[1::2], strict=True)]
    serve(pairs, pairs[0][0].recv_bytes())


def _echo(stream: IO[bytes]) -> None:
    """Copy a reader interpreter's log lines to this process's stderr as it is now, so a live
    progress bar prints them above itself instead of being cut by them."""
    with stream:
        for line in stream:
            sys.stderr.write(line.decode("utf-8", "replace"))


def serve(pairs: list[tuple[Connection, Connection]], packed_setup: bytes) -> None:
    """A reader process's life, given the (task, event) pipes of one or more readers and the setup
    the first read: prepare everything the readers share, then fork a reader for each pair after the
    first, before any thread or connection exists, and serve the first pair. Stray prints go to
    stderr, never into a pipe.

    What is prepared before forking is built once for all readers: the identity policy, the public
    suffix tree and the connectors of the kinds the sync reads. It then lasts as long as the readers,
    so it is frozen out of the garbage collector's sight, which `reader_process` kept off until now."""
    os.dup2(2, 1)
    name_process("custody-reader")
    setup: ReaderSetup = pickle.loads(packed_setup)
    configure_logging(setup.log_level)
    identity = setup.identity()
    warm_public_suffixes()
    for kind in setup.kinds:
        connector_class(kind)
    gc.freeze()
    gc.enable()
    children = [_fork_reader(pairs, pair, setup, identity) for pair in pairs[1:]]
    _keep_only(pairs, pairs[0])
    _serve(*pairs[0], setup, identity)
    for pid in children:
        os.waitpid(pid, 0)


def _fork_reader(pairs: list[tuple[Connection, Connection]], pair: tuple[Connection, Connection], setup: ReaderSetup,
                 identity: Identity) -> int:
    """Fork a reader for `pair`; in the parent, return its pid. The child never returns."""
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _keep_only(pairs, pair)
        _serve(*pair, setup, identity)
    except KeyboardInterrupt:
        code = 1
    except BaseException:
        log.exception("forked reader failed")
        code = 1
    finally:
        os._exit(code)


def _keep_only(pairs: list[tuple[Connection, Connection]], kept: tuple[Connection, Connection]) -> None:
    """Close every other reader's pipe ends, so each reader's death is seen as the end of its own pipe."""
    for pair in pairs:
        if pair is not kept:
            for connection in pair:
                connection.close()


@fewer_collections()
def _serve(tasks: Connection, events: Connection, setup: ReaderSetup, identity: Identity) -> None:
    """Read sources as tasks arrive, report each batch, until the writer closes the task pipe or
    stops listening."""
    try:
        events.send_bytes(_packed(ReadEvent("ready", "")))
        log.debug("reader process %d is up", os.getpid())
        while True:
            task: ReadTask = pickle.loads(tasks.recv_bytes())
            log.debug("reader process %d reads source %s", os.getpid(), task.source.name)
            for event in _events_of(setup.batch_size, identity, task):
                events.send_bytes(_packed(event))
    except (EOFError, OSError):
        return


def _events_of(batch_size: int, identity: Identity, task: ReadTask) -> Iterator[ReadEvent]:
    name = task.source.name
    try:
        yield from SourceReading(open_connector(task.source, batch_size), identity, task).events()
        yield ReadEvent("done", name)
    except Exception as error:  # a bug must fail this source, not leave the writer waiting forever
        yield ReadEvent("failed", name, failure=classify(error, name))


def _packed(item: object) -> bytes:
    return pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
