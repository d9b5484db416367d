"""A source this process began while its reader started is handed over without reading anything twice."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.imap import ImapSettings
from daemon.sync.engine import sync_sources
from registry.models import Message
from tests.servers.dovecot import DovecotServer
from tests.support.mail import conversation

POLICY = Policy(company_domains=["acme.test"])
MESSAGES = 200
UP = re.compile(r"reader process \d+ is up")


def test_an_imap_source_handed_to_a_reader_has_every_uid_fetched_once(
    dovecot: DovecotServer, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """This process stores its first batch only once the reader is up, so the reader takes the
    source over mid-way, while the connector here has fetched further batches ahead of what was
    stored (seen against Cyrus: UIDs 501-1000 fetched twice). The server's own log of the commands
    each session sent must show every UID fetched once, by this process or by the reader."""
    dovecot.add_user("alice", "secret-of-alice")
    dovecot.append("alice", "INBOX", conversation("alice@acme.test", ["ann@client.test", "ben@buyer.test"], MESSAGES))
    source = ImapSettings(name="alice-imap", owner="alice@acme.test", host="127.0.0.1", port=dovecot.port,
                          security="plain", username=dovecot.login("alice"), password="secret-of-alice")
    settings = Settings(reps=[RepConfig(email="alice@acme.test")], sources=[source], batch_size=10, sync_workers=1,
                        sync_readers_after_seconds=0, log_level="DEBUG")
    said: list[str] = []

    def first_batch_waits_for_the_reader(_source: str, _items: int) -> None:
        deadline = time.monotonic() + 60
        while not any(UP.search(line) for line in said):
            assert time.monotonic() < deadline, "the reader never said it was up"
            said.extend(capsys.readouterr().err.splitlines())
            time.sleep(0.01)

    reports = sync_sources(engine, settings, POLICY, [source], progress=first_batch_waits_for_the_reader)

    assert [(r.ok, r.messages) for r in reports] == [(True, MESSAGES)]
    with engine.connect() as db:
        assert db.execute(select(func.count()).select_from(Message)).scalar_one() == MESSAGES
    sessions = fetched_uids(dovecot, "alice")
    assert len(sessions) == 2, "this process began the source and the reader finished it"
    every = Counter(uid for uids in sessions for uid in uids)
    assert sorted(uid for uid, times in every.items() if times > 1) == []
    assert sorted(every) == list(range(1, MESSAGES + 1))


def fetched_uids(server: DovecotServer, user: str) -> list[list[int]]:
    """The UIDs each IMAP session that fetched any asked for, from Dovecot's raw log of its commands."""
    sessions = []
    for path in sorted((server.root / "rawlog" / server.login(user)).glob("*.in")):
        uids = [uid for line in path.read_text(errors="replace").splitlines() if " UID FETCH " in line
                for uid in _uid_set(line.split(" UID FETCH ", 1)[1].split(" ", 1)[0])]
        if uids:
            sessions.append(uids)
    return sessions


def _uid_set(text: str) -> list[int]:
    uids = []
    for part in text.split(","):
        first, _, last = part.partition(":")
        uids += range(int(first), int(last or first) + 1)
    return uids
