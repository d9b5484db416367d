"""Letters through Microsoft Graph sendMail, against the fake tenant through real msal and requests.

Each letter is sent once, carries custody's Message-ID as its internetMessageId and in custody's
extended property, and a send left in doubt is found again by that property in Sent Items.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from config.sections import GraphSendConfig
from daemon.outbox.dispatch import outbox_summary
from daemon.outbox.transports.base import TransportError
from daemon.outbox.transports.graph import PROPERTY_ID, GraphTransport
from registry.store import open_registry
from tests.daemon.outbox.test_outbox_crash import POLICY
from tests.servers.graph import Tenant
from tests.support.crash import kill_once_accepted, outbox_config, run_to_the_end
from tests.support.forks import CustodyForks
from tests.support.graph import secret_file, tenant_app
from tests.support.outbox import COPY, CUSTOMER, letter, plan_notifications

SENDER = "hello@company.example"


def graph_transport(tenant: Tenant, folder: Path, **fields: Any) -> GraphTransport:
    return GraphTransport(GraphSendConfig(**(tenant_app(tenant, folder) | fields)))


def addresses(recipients: list[dict[str, Any]]) -> list[str]:
    return [r["emailAddress"]["address"] for r in recipients]


def posts(tenant: Tenant, mailbox: str = SENDER) -> int:
    return sum(method == "POST" for method, _ in tenant.requests_to(mailbox))


def test_a_letter_is_delivered_once_with_its_recipients_body_message_id_and_custodys_property(
        graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER, "Company")
    transport = graph_transport(graph_tenant, tmp_path)

    transport.send(letter())

    [delivered] = graph_tenant.sent
    assert (addresses(delivered["toRecipients"]), addresses(delivered["ccRecipients"])) == ([CUSTOMER], [COPY])
    assert delivered["subject"] == "Your new contact at Company"
    assert delivered["body"] == {"contentType": "HTML", "content": "<p>Dear Ana,</p><p>Sam now looks after your account.</p>\n"}
    assert delivered["internetMessageId"] == "<handover-1-0@company.example>"
    assert delivered["internetMessageHeaders"] == [{"name": "X-Custody-Notification", "value": "1"}]
    [copy] = graph_tenant.sent_items(SENDER)
    assert copy["singleValueExtendedProperties"] == [{"id": PROPERTY_ID, "value": "<handover-1-0@company.example>"}]
    transport.close()


def test_recipients_an_earlier_attempt_reached_are_left_out(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER)
    transport = graph_transport(graph_tenant, tmp_path)

    transport.send(letter(), already=[COPY.upper()])

    [delivered] = graph_tenant.sent
    assert (addresses(delivered["toRecipients"]), delivered["ccRecipients"]) == ([CUSTOMER], [])


def test_a_shared_mailbox_sends_every_letter_and_is_where_they_are_looked_up(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user("outbox@company.example")
    transport = graph_transport(graph_tenant, tmp_path, mailbox="outbox@company.example")

    transport.send(letter(sender="sam.successor@company.example"))

    assert [m["sender"]["emailAddress"]["address"] for m in graph_tenant.sent] == ["outbox@company.example"]
    assert transport.find_sent("<handover-1-0@company.example>", "sam.successor@company.example") is True


def test_the_sent_items_copy_tells_a_sent_letter_from_one_never_sent(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER)
    transport = graph_transport(graph_tenant, tmp_path, sent_copy_wait_seconds=0.2)
    transport.send(letter("<it's-sent@company.example>"))

    assert transport.find_sent("<it's-sent@company.example>", SENDER) is True
    assert transport.find_sent("<never-sent@company.example>", SENDER) is False


def test_a_copy_exchange_files_late_is_still_found(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER)
    graph_tenant.sent_items_delay_seconds = 1.5
    transport = graph_transport(graph_tenant, tmp_path, sent_copy_wait_seconds=10)
    transport.send(letter())
    assert graph_tenant.sent_items(SENDER) == []

    assert transport.find_sent("<handover-1-0@company.example>", SENDER) is True


def test_a_throttling_burst_is_waited_out_and_the_letter_sent_once(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER)
    graph_tenant.throttle(SENDER, 2, retry_after_seconds=1)
    transport = graph_transport(graph_tenant, tmp_path)

    transport.send(letter())

    assert (posts(graph_tenant), len(graph_tenant.sent)) == (3, 1)


def test_a_send_whose_connection_drops_unanswered_is_in_doubt_and_not_repeated(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER)
    graph_tenant.crash_after_send(SENDER)
    transport = graph_transport(graph_tenant, tmp_path)

    with pytest.raises(TransportError) as raised:
        transport.send(letter())

    assert (raised.value.in_doubt, raised.value.permanent, raised.value.unreachable) == (True, False, False)
    assert (posts(graph_tenant), len(graph_tenant.sent)) == (1, 1)
    assert transport.find_sent("<handover-1-0@company.example>", SENDER) is True


def test_without_mail_send_nothing_can_be_sent_and_the_error_names_the_permission(
        graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(SENDER)
    graph_tenant.revoke("Mail.Send")
    transport = graph_transport(graph_tenant, tmp_path)

    with pytest.raises(TransportError) as raised:
        transport.send(letter())

    assert (raised.value.unreachable, raised.value.in_doubt) == (True, False)
    assert "Mail.Send" in str(raised.value) and graph_tenant.client_secret not in str(raised.value)
    assert graph_tenant.sent == []


def test_a_mailbox_the_tenant_does_not_have_fails_the_letter_for_good(graph_tenant: Tenant, tmp_path: Path) -> None:
    transport = graph_transport(graph_tenant, tmp_path)

    with pytest.raises(TransportError) as raised:
        transport.send(letter())

    assert (raised.value.permanent, raised.value.unreachable, raised.value.in_doubt) == (True, False, False)


def graph_config(folder: Path, registry: str, tenant: Tenant) -> Path:
    """A config sending through the fake tenant, the secret in a file as an admin deploys it."""
    return outbox_config(folder, registry, POLICY, f"""\
[graph_send]
tenant_id = "{tenant.tenant_id}"
client_id = "{tenant.client_id}"
client_secret_file = "{secret_file(tenant, folder)}"
authority_host = "{tenant.server.base_url}"
graph_url = "{tenant.graph_url}"
ca_file = "{tenant.ca_file}"
retry_wait_seconds = 0.05
sent_copy_wait_seconds = 2
""")


def test_a_dispatcher_killed_after_graph_took_a_letter_settles_it_by_the_sent_items_copy(
        graph_tenant: Tenant, tmp_path: Path, custody_forks: CustodyForks) -> None:
    """`custody outbox run` is SIGKILLed once Graph has delivered its first letter, before custody recorded
    the send: the restart finds the letter in Sent Items and sends the rest."""
    graph_tenant.add_user(SENDER)
    registry = tmp_path / "registry.db"
    engine = open_registry(f"sqlite:///{registry}")
    planned = plan_notifications(engine, 3, sender=SENDER)
    config = graph_config(tmp_path, f"sqlite:///{registry}", graph_tenant)
    graph_tenant.latency_seconds = 0.5

    kill_once_accepted(custody_forks, config, registry, lambda: posts(graph_tenant) == 1,
                       lambda: len(graph_tenant.sent) == 1)
    graph_tenant.latency_seconds = 0.0
    assert outbox_summary(engine).states == {"sending": 1, "pending": 2}

    report = run_to_the_end(custody_forks, config)

    assert (report["in_doubt"], report["found_sent"], report["sent"], report["held"]) == (1, 1, 2, 0)
    assert Counter(m["internetMessageId"] for m in graph_tenant.sent) == {p.message_id: 1 for p in planned}
    assert outbox_summary(engine).states == {"sent": 3}
    engine.dispose()
