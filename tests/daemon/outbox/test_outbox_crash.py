"""Exactly once under crashes: `custody outbox run` is killed with SIGKILL again and again.

Each round starts the dispatcher as its own process, waits until the SMTP server has taken one to
eight more messages, lets it run a few random milliseconds longer and kills it. When a round finally
ends by itself, every Message-ID must have reached the server once, except the sends the policy
held because a kill hit them mid-transaction: those are reported, and reached it at most once.
The share of sends held is printed for each way of keeping the Sent folder; where the relay files
the copies, nothing is held.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine

from registry.store import open_registry
from tests.daemon.outbox.test_outbox_in_doubt import wait_until
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import FilingRelay, SmtpServer
from tests.support.forks import CustodyForks, ForkedCommand
from tests.support.outbox import Planned, plan_notifications

MESSAGES = 300
MIN_KILLS = 50
POLICY = """\
dispatch:
  per_mailbox_per_hour: 0
  per_domain_per_hour: 0
  quiet_hours: null
  max_per_run: 100000
  in_doubt: hold
"""


def write_config(folder: Path, registry: tuple[str, str | None], smtp: SmtpServer, sent_folder: str = "") -> Path:
    url, schema = registry
    (folder / "policy.yaml").write_text(POLICY)
    config = folder / "custody.toml"
    config.write_text(f"""\
data_dir = "{folder / 'data'}"
database_url = "{url}"
database_schema = "{schema or ''}"
policy_file = "policy.yaml"
log_level = "WARNING"

[smtp]
host = "127.0.0.1"
port = {smtp.port}
security = "plain"
{sent_folder}""")
    return config


def custody(forks: CustodyForks, config: Path, *args: str) -> ForkedCommand:
    """A process of its own per command, forked from an interpreter that has custody imported."""
    return forks.start("--config", str(config), *args)


def run_with_kills(forks: CustodyForks, config: Path, smtp: SmtpServer, rng: random.Random) -> int:
    """Kill rounds until one finishes on its own; returns the number of kills."""
    kills = 0
    for _ in range(MESSAGES * 2):
        seen = len(smtp.received)
        kill_after = seen + rng.randint(1, 8)
        process = custody(forks, config, "outbox", "run")
        while process.poll() is None and len(smtp.received) < kill_after:
            time.sleep(0.001)
        if process.poll() is None:
            time.sleep(rng.uniform(0, 0.006))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            kills += 1
            continue
        out, err = process.communicate()
        assert process.returncode == 0, err.decode()
        if len(smtp.received) == seen:
            return kills
    raise AssertionError("the dispatcher never finished")


def check_exactly_once(forks: CustodyForks, config: Path, smtp: SmtpServer, planned: list[Planned]) -> dict[str, int]:
    status = custody(forks, config, "outbox", "status", "--json")
    out, err = status.communicate()
    assert status.returncode == 0, err.decode()
    summary = json.loads(out)
    held = {item["message_id"] for item in summary["attention"] if item["state"] == "held"}
    assert all("cannot tell whether it went out" in item["reason"] for item in summary["attention"])
    received = Counter(smtp.message_ids())
    assert [mid for mid, n in received.items() if n > 1] == []
    assert set(received) <= {p.message_id for p in planned}
    missing = {p.message_id for p in planned} - set(received)
    assert missing <= held, f"{len(missing - held)} messages neither sent nor reported"
    assert summary["states"].get("sent", 0) + len(held) == len(planned)
    assert summary["states"].get("sent", 0) == len(set(received) - held)
    return summary["states"]


def crash_repeatedly(forks: CustodyForks, engine: Engine, config: Path, smtp: SmtpServer, seed: int,
                     label: str) -> tuple[int, dict[str, int]]:
    planned = plan_notifications(engine, MESSAGES, domains=("acme.example", "globex.example", "initech.example"))
    kills = run_with_kills(forks, config, smtp, random.Random(seed))
    assert kills >= MIN_KILLS
    states = check_exactly_once(forks, config, smtp, planned)
    print(f"\n{label}: held {states.get('held', 0)}/{MESSAGES} sends after {kills} kills")
    return kills, states


def sent_folder_settings(dovecot: DovecotServer, extra: str = "") -> str:
    return f"""
[smtp.sent_folder]
host = "127.0.0.1"
port = {dovecot.port}
security = "plain"
username = "{dovecot.login('outbox')}"
password = "outbox-secret"
{extra}"""


def test_sigkill_at_many_points_without_a_sent_folder_holds_only_what_it_cannot_know(
        registry_target: tuple[str, str | None], smtp_server: SmtpServer, tmp_path: Path,
        custody_forks: CustodyForks) -> None:
    engine = open_registry(*registry_target)
    config = write_config(tmp_path, registry_target, smtp_server)

    kills, states = crash_repeatedly(custody_forks, engine, config, smtp_server, seed=5, label="no sent folder")

    assert states.get("held", 0) <= kills
    engine.dispose()


def test_sigkill_at_many_points_with_a_sent_folder_settles_most_sends_by_lookup(
        tmp_path: Path, smtp_server: SmtpServer, dovecot: DovecotServer, custody_forks: CustodyForks) -> None:
    registry = (f"sqlite:///{tmp_path / 'registry.db'}", None)
    engine = open_registry(*registry)
    dovecot.add_user("outbox", "outbox-secret")
    config = write_config(tmp_path, registry, smtp_server, sent_folder_settings(dovecot))

    kills, states = crash_repeatedly(custody_forks, engine, config, smtp_server, seed=7, label="custody files Sent")

    assert states.get("held", 0) <= kills
    engine.dispose()


def test_sigkill_at_many_points_with_the_relay_filing_sent_copies_holds_nothing(
        tmp_path: Path, filing_relay: FilingRelay, dovecot: DovecotServer, custody_forks: CustodyForks) -> None:
    """The same kill loop against a relay that files each message it accepts in Sent 0.2 s later."""
    registry = (f"sqlite:///{tmp_path / 'registry.db'}", None)
    engine = open_registry(*registry)
    settings = sent_folder_settings(dovecot, 'filed_by = "relay"\nrelay_copy_wait_seconds = 3\n')
    config = write_config(tmp_path, registry, filing_relay, settings)

    kills, states = crash_repeatedly(custody_forks, engine, config, filing_relay, seed=7, label="relay files Sent")

    assert states.get("held", 0) == 0
    wait_until(lambda: filing_relay.copies_filed == len(filing_relay.received))
    assert sorted(filing_relay.filed()) == sorted(filing_relay.message_ids()), "custody filed a copy of its own"
    engine.dispose()


def test_several_dispatchers_on_one_registry_share_the_work_without_duplicates(
        registry_target: tuple[str, str | None], smtp_server: SmtpServer, tmp_path: Path,
        custody_forks: CustodyForks) -> None:
    engine = open_registry(*registry_target)
    planned = plan_notifications(engine, 200)
    config = write_config(tmp_path, registry_target, smtp_server)

    processes = [custody(custody_forks, config, "outbox", "run") for _ in range(3)]
    reports = [json.loads(p.communicate()[0]) for p in processes]

    assert sum(r["sent"] for r in reports) == 200
    assert sorted(smtp_server.message_ids()) == sorted(p.message_id for p in planned)
    engine.dispose()
