"""The real Enron mailboxes of ten employees, synced as a compliance team would: every recipient
counted, no customer made of a cut-off domain, and a report as of the archive's own time."""

from __future__ import annotations

import json
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

import pytest
import tldextract
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from config.policy import FREEMAIL_DOMAINS
from daemon.cli.app import app
from registry.models import Customer, Rep
from registry.store import open_registry

pytestmark = pytest.mark.corpus

REPS = {
    "allen-p": ("phillip.allen@enron.com", ["k..allen@enron.com"]),
    "arnold-j": ("john.arnold@enron.com", []),
    "bass-e": ("eric.bass@enron.com", []),
    "beck-s": ("sally.beck@enron.com", []),
    "buy-r": ("rick.buy@enron.com", []),
    "farmer-d": ("daren.farmer@enron.com", ["j..farmer@enron.com"]),
    "kean-s": ("steven.kean@enron.com", ["j..kean@enron.com"]),
    "lavorato-j": ("john.lavorato@enron.com", ["lavorato@enron.com"]),
    "lay-k": ("kenneth.lay@enron.com", ["klay@enron.com"]),
    "scott-s": ("susan.scott@enron.com", ["m..scott@enron.com"]),
}
POLICY_YAML = "company_domains: [enron.com]\nlookback_days: 180\ndormant_after_days: 730\n"
_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def config_for(tmp_path: Path, enron: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY_YAML, encoding="utf-8")
    lines = [f'data_dir = "{tmp_path / "data"}"', 'policy_file = "policy.yaml"', "batch_size = 500"]
    for email, aliases in REPS.values():
        lines += ["[[reps]]", f'email = "{email}"', f"aliases = {json.dumps(aliases)}"]
    for user, (email, _) in REPS.items():
        lines += ["[[sources]]", f'name = "{user}"', 'kind = "maildir"', f'path = "{enron / user}"', f'owner = "{email}"']
    config = tmp_path / "custody.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def synced(enron: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Engine]:
    tmp_path = tmp_path_factory.mktemp("enron")
    config = config_for(tmp_path, enron)
    result = CliRunner().invoke(app, ["--config", str(config), "sync"])
    assert result.exit_code == 0, result.output
    return config, open_registry(f"sqlite:///{tmp_path / 'data' / 'custody.db'}")


def independent_customers(enron: Path) -> set[str]:
    """Customer keys written from the email package's own address parsing: every external address of
    a message between an Enron address and the outside, by registrable domain (or the address at a
    free-mail provider). Noise (bulk, lists, reports, automatic senders) never counts, as in custody."""
    parser = BytesHeaderParser(policy=compat32)
    customers: set[str] = set()
    for path in sorted(p for p in enron.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            headers = parser.parse(handle)
        if _noise(headers):
            continue
        senders = _addresses(headers.get_all("From", []))
        recipients = _addresses([v for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])])
        if not senders or _automatic(senders[0]):
            continue
        if _internal(senders[0]):
            external = [a for a in recipients if not _internal(a) and not _automatic(a)]
        elif any(_internal(a) for a in recipients):
            external = [senders[0]]
        else:
            external = []
        customers.update(_customer_key(a) for a in external)
    return customers


def _addresses(values: list[str]) -> list[str]:
    """Addresses at a domain under a public suffix: a typo such as bakerbotts.ocm reaches nobody."""
    found = [email.strip().strip("'\"").lower() for _, email in getaddresses([str(v) for v in values])]
    return [email for email in found if "@" in email and _SUFFIXES(email.rpartition("@")[2]).suffix]


def _noise(headers) -> bool:  # type: ignore[no-untyped-def]
    auto = str(headers.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(headers.get("Precedence", "")).strip().lower()
    content = str(headers.get("Content-Type", "")).split(";")[0].strip().lower()
    return auto not in ("", "no") or precedence in ("bulk", "list", "junk") or bool(headers.get("List-Id")) \
        or content == "multipart/report"


def _automatic(address: str) -> bool:
    local = address.partition("@")[0]
    return local.startswith(("noreply", "no-reply", "no_reply", "no.reply", "donotreply", "do-not-reply",
                             "bounce")) or local in (
        "mailer-daemon", "postmaster", "hostmaster", "webmaster", "abuse", "noc", "security", "root", "daemon",
        "nobody", "uucp", "listserv", "majordomo", "notification", "notifications", "alert", "alerts",
        "newsletter", "newsletters", "news", "marketing")


def _internal(address: str) -> bool:
    domain = address.rpartition("@")[2]
    return domain == "enron.com" or domain.endswith(".enron.com")


def _customer_key(address: str) -> str:
    domain = address.rpartition("@")[2]
    labels = domain.split(".")
    if any(".".join(labels[i:]) in FREEMAIL_DOMAINS for i in range(len(labels))):
        return address
    return _SUFFIXES(domain).top_domain_under_public_suffix or domain


def test_every_customer_domain_is_whole_and_the_count_matches_the_email_package(
        synced: tuple[Path, Engine], enron: Path) -> None:
    _, engine = synced
    with engine.connect() as db:
        keys = set(db.execute(select(Customer.key).where(Customer.kind == "organisation")).scalars())
        people = set(db.execute(select(Customer.key).where(Customer.kind == "person")).scalars())
    assert sorted(k for k in keys | people if not _SUFFIXES(k.rpartition("@")[2]).suffix) == []
    expected = independent_customers(enron)
    assert keys | people == expected


def test_only_the_declared_reps_are_reps_and_system_mailboxes_are_nobody(synced: tuple[Path, Engine]) -> None:
    _, engine = synced
    with engine.connect() as db:
        reps = set(db.execute(select(Rep.email).where(Rep.role == "rep")).scalars())
        people = set(db.execute(select(Rep.email)).scalars())
    assert reps == {email for email, _ in REPS.values()}
    assert not {p for p in people if p.partition("@")[0] in ("mailer-daemon", "postmaster")}
    assert not people & {alias for _, aliases in REPS.values() for alias in aliases}


def test_a_report_as_of_the_archives_time_finds_the_customers_covered_and_single_threaded(
        synced: tuple[Path, Engine]) -> None:
    config, _ = synced
    result = CliRunner().invoke(app, ["--config", str(config), "report", "coverage", "-f", "json", "-o", "-",
                                      "--as-of", "2001-06-01"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["single-threaded"] > 100 and summary["covered"] >= 5
    assert summary["dormant"] < sum(summary.values()) / 2
