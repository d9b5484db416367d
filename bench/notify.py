"""Send 10,000 planned notifications to a local aiosmtpd server through `custody outbox run`.

Rate limits and quiet hours off. The dispatcher runs as its own process (the real CLI), so the
peak RSS is the dispatcher's alone; the SMTP server runs in this process and counts what arrives.
Prints one JSON object. Usage: python bench/notify.py [--messages N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from registry.store import open_registry  # noqa: E402
from tests.servers.smtp import SmtpServer  # noqa: E402
from tests.support.outbox import plan_notifications  # noqa: E402

POLICY = "dispatch: {per_mailbox_per_hour: 0, per_domain_per_hour: 0, quiet_hours: null, max_per_run: 1000000}\n"


def registry(folder: Path, postgres: str) -> tuple[str, str]:
    """(database URL, schema): a fresh SQLite file, or a fresh schema in the PostgreSQL database."""
    if not postgres:
        return f"sqlite:///{folder / 'registry.db'}", ""
    schema = f"custody_bench_{uuid.uuid4().hex[:10]}"
    with create_engine(postgres, isolation_level="AUTOCOMMIT").connect() as db:
        db.execute(text(f'CREATE SCHEMA "{schema}"'))
    return postgres, schema


def drop_schema(postgres: str, schema: str) -> None:
    with create_engine(postgres, isolation_level="AUTOCOMMIT").connect() as db:
        db.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--postgres", default="", help="PostgreSQL URL; default: SQLite in a temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="custody-bench-notify-"))
    url, schema = registry(folder, args.postgres)
    engine = open_registry(url, schema or None)
    started = time.perf_counter()
    plan_notifications(engine, args.messages, domains=tuple(f"customer{i}.example" for i in range(50)))
    planned_seconds = time.perf_counter() - started
    engine.dispose()
    server = SmtpServer()
    server.start()
    (folder / "policy.yaml").write_text(POLICY)
    config = folder / "custody.toml"
    config.write_text(f'data_dir = "{folder}"\ndatabase_url = "{url}"\ndatabase_schema = "{schema}"\n'
                      f'policy_file = "policy.yaml"\nlog_level = "WARNING"\n'
                      f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "plain"\n')
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "daemon.cli.app", "--config", str(config), "outbox", "run"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    server.stop()
    report = json.loads(run.stdout)
    received = len(server.received)
    if schema:
        drop_schema(args.postgres, schema)
    print(json.dumps({
        "backend": "postgresql" if schema else "sqlite",
        "notifications": args.messages,
        "sent": report["sent"],
        "received_by_smtp_server": received,
        "seconds_including_startup": round(seconds, 2),
        "messages_per_second": round(received / seconds, 1),
        "dispatcher_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "planning_insert_seconds": round(planned_seconds, 2),
    }))


if __name__ == "__main__":
    main()
