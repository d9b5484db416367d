"""The fake Graph answers msal and plain requests the way the documented service does."""

from __future__ import annotations

import threading
from typing import Any

import msal
import pytest
import requests

from tests.servers.enron_folders import ENRON_MAILDIR
from tests.servers.graph import FakeGraph, Tenant
from tests.servers.graph_corpus import enron_mailbox_messages

PROPERTY_ID = "String {00020386-0000-0000-C000-000000000046} Name custodyKey"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


def _session(tenant: Tenant) -> requests.Session:
    session = requests.Session()
    session.verify = tenant.ca_file
    session.trust_env = False
    return session


def _app(tenant: Tenant, credential: Any = None) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        tenant.client_id, client_credential=credential or tenant.client_secret, authority=tenant.authority,
        instance_discovery=False, http_client=_session(tenant),
    )


def _graph(tenant: Tenant) -> requests.Session:
    """A session carrying a bearer token msal obtained from the fake identity platform."""
    session = _session(tenant)
    token = _app(tenant).acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _all_pages(session: requests.Session, url: str, **headers: str) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        body = session.get(url, headers=headers).json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_msal_gets_tokens_with_a_secret_or_a_certificate(graph_tenant: Tenant) -> None:
    assert "access_token" in _app(graph_tenant).acquire_token_for_client(scopes=GRAPH_SCOPE)
    by_thumbprint = {"private_key": graph_tenant.private_key_pem, "thumbprint": graph_tenant.thumbprint}
    assert "access_token" in _app(graph_tenant, by_thumbprint).acquire_token_for_client(scopes=GRAPH_SCOPE)
    by_certificate = {"private_key": graph_tenant.private_key_pem, "public_certificate": graph_tenant.certificate_pem}
    assert "access_token" in _app(graph_tenant, by_certificate).acquire_token_for_client(scopes=GRAPH_SCOPE)
    refused = _app(graph_tenant, "wrong").acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert refused["error"] == "invalid_client" and 7000215 in refused["error_codes"]
    assert graph_tenant.token_requests == 4


def test_graph_requires_a_live_token_of_the_tenant(graph_tenant: Tenant) -> None:
    graph_tenant.add_user("ann@example.com")
    answer = _session(graph_tenant).get(f"{graph_tenant.graph_url}/v1.0/users", headers={"Authorization": "Bearer forged"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    graph = _graph(graph_tenant)
    assert graph.get(f"{graph_tenant.graph_url}/v1.0/users").status_code == 200
    graph_tenant.revoke_tokens()
    assert graph.get(f"{graph_tenant.graph_url}/v1.0/users").status_code == 401


def test_users_delta_pages_then_reports_changes_since_any_delta_link(graph_tenant: Tenant) -> None:
    boss = graph_tenant.add_user("boss@example.com", "Big Boss")
    staff = [graph_tenant.add_user(f"u{n}@example.com", department="Sales", manager="boss@example.com") for n in range(3)]
    graph = _graph(graph_tenant)
    url = f"{graph_tenant.graph_url}/v1.0/users/delta?$select=displayName,mail,accountEnabled,department,manager"
    first = graph.get(url, headers={"Prefer": "odata.maxpagesize=3"}).json()
    assert len(first["value"]) == 3
    assert first["@odata.nextLink"].startswith(f"{graph_tenant.graph_url}/v1.0/users/delta?$skiptoken=")
    users, delta_link = _all_pages(graph, url)
    assert len(users) == 4 and {u["manager@delta"][0]["id"] for u in users if u["mail"] != "boss@example.com"} == {boss}
    assert set(users[0]) == {"displayName", "mail", "accountEnabled", "department", "manager@delta", "id"}
    graph_tenant.update_user("u0@example.com", enabled=False, manager=None)
    graph_tenant.delete_user("u1@example.com")
    changes, _ = _all_pages(graph, delta_link)
    assert changes[0]["accountEnabled"] is False and changes[0]["manager@delta"] == []
    assert changes[1] == {"id": staff[1], "@removed": {"reason": "changed"}}
    assert _all_pages(graph, delta_link)[0] == changes
    default, _ = _all_pages(graph, f"{graph_tenant.graph_url}/v1.0/users/delta")
    assert "accountEnabled" not in default[0] and "userPrincipalName" in default[0]


def test_message_delta_rounds_tombstones_and_expiry(graph_tenant: Tenant) -> None:
    graph_tenant.add_user("ann@example.com")
    ids = [graph_tenant.add_message("ann@example.com", "inbox", {"subject": f"m{n}"}) for n in range(5)]
    graph = _graph(graph_tenant)
    url = f"{graph_tenant.graph_url}/v1.0/users/ANN@example.com/mailFolders/Inbox/messages/delta?$select=subject,sender"
    first = graph.get(url, headers={"Prefer": 'odata.maxpagesize=2, IdType="ImmutableId"'})
    assert first.headers["Preference-Applied"] == 'odata.maxpagesize=2, IdType="ImmutableId"'
    assert [m["subject"] for m in first.json()["value"]] == ["m0", "m1"]
    assert set(first.json()["value"][0]) == {"@odata.type", "@odata.etag", "subject", "sender", "id"}
    messages, delta_link = _all_pages(graph, url, Prefer="odata.maxpagesize=2")
    assert [m["id"] for m in messages] == ids
    graph_tenant.delete_message("ann@example.com", ids[0])
    graph_tenant.update_message("ann@example.com", ids[1], {"isRead": True, "subject": "seen"})
    added = graph_tenant.add_message("ann@example.com", "inbox", {"subject": "new"})
    changes, _ = _all_pages(graph, delta_link)
    assert changes[0] == {"@odata.type": "#microsoft.graph.message", "id": ids[0], "@removed": {"reason": "deleted"}}
    assert [(c["id"], c["subject"]) for c in changes[1:]] == [(ids[1], "seen"), (added, "new")]
    graph_tenant.expire_delta_tokens("ann@example.com")
    gone = graph.get(delta_link)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
    bad = graph.get(f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/mailFolders/inbox/messages/delta?$select=nope")
    assert bad.status_code == 400


def test_contacts_delta_pages_are_capped_at_200(graph_tenant: Tenant) -> None:
    graph_tenant.add_user("ann@example.com")
    for n in range(205):
        graph_tenant.add_contact("ann@example.com", {"displayName": f"c{n}"})
    graph = _graph(graph_tenant)
    page = graph.get(f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/contacts/delta",
                     headers={"Prefer": "odata.maxpagesize=500"})
    assert len(page.json()["value"]) == 200 and page.headers["Preference-Applied"] == "odata.maxpagesize=200"


def test_throttling_failures_concurrency_and_request_budget(graph_tenant: Tenant) -> None:
    graph_tenant.add_user("ann@example.com")
    graph = _graph(graph_tenant)
    url = f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/mailFolders/inbox/messages/delta"
    graph_tenant.throttle("ann@example.com", 1, retry_after_seconds=7)
    graph_tenant.fail("ann@example.com", 1)
    throttled, failed, fine = graph.get(url), graph.get(url), graph.get(url)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert (failed.status_code, fine.status_code) == (503, 200)
    graph_tenant.latency_seconds = 0.3
    statuses: list[int] = []
    workers = [threading.Thread(target=lambda: statuses.append(_graph(graph_tenant).get(url).status_code)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(statuses) == [200] * 4 + [429] * 2 and graph_tenant.max_concurrency_seen["ann@example.com"] == 4
    graph_tenant.latency_seconds = 0.0
    graph_tenant.add_user("bob@example.com")
    graph_tenant.mailbox_requests_per_10_minutes = 2
    budget = [graph.get(url.replace("ann@", "bob@")) for _ in range(3)]
    assert [answer.status_code for answer in budget] == [200, 200, 429] and 590 <= int(budget[2].headers["Retry-After"]) <= 600


def test_send_mail_files_a_copy_without_headers_found_by_extended_property(graph_tenant: Tenant) -> None:
    graph_tenant.add_user("ann@example.com", "Ann")
    graph = _graph(graph_tenant)
    message = {
        "subject": "Hello", "body": {"contentType": "text", "content": "Hi"},
        "toRecipients": [{"emailAddress": {"address": "bob@client.example"}}],
        "internetMessageHeaders": [{"name": "x-custody-key", "value": "k1"}],
        "singleValueExtendedProperties": [{"id": PROPERTY_ID, "value": "it's-k1"}],
    }
    answer = graph.post(f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/sendMail", json={"message": message})
    assert answer.status_code == 202 and answer.content == b""
    assert graph_tenant.sent[0]["internetMessageHeaders"] == message["internetMessageHeaders"]
    copy = graph_tenant.sent_items("ann@example.com")[0]
    assert "internetMessageHeaders" not in copy
    assert copy["singleValueExtendedProperties"] == message["singleValueExtendedProperties"]
    wanted = PROPERTY_ID.replace("String {00020386-0000-0000-C000", "string {00020386-0000-0000-c000")
    lookup = {
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{wanted}' and ep/value eq 'IT''S-K1')",
        "$select": "id,internetMessageId", "$expand": f"singleValueExtendedProperties($filter=id eq '{PROPERTY_ID}')",
    }
    sent_items = f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/mailFolders('SentItems')/messages"
    found = graph.get(sent_items, params=lookup).json()["value"]
    assert [m["internetMessageId"] for m in found] == [graph_tenant.sent[0]["internetMessageId"]]
    assert found[0]["singleValueExtendedProperties"][0]["value"] == "it's-k1"
    by_id = graph.get(f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/mailFolders/sentitems/messages",
                      params={"$filter": f"internetMessageId eq '{copy['internetMessageId']}'"}).json()["value"]
    assert len(by_id) == 1
    bad = dict(message, internetMessageHeaders=[{"name": "Received", "value": "x"}])
    refused = graph.post(f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/sendMail", json={"message": bad})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidInternetMessageHeader"


def test_a_send_in_doubt_is_delivered_but_unanswered(graph_tenant: Tenant) -> None:
    graph_tenant.add_user("ann@example.com")
    graph = _graph(graph_tenant)
    graph_tenant.crash_after_send("ann@example.com")
    message = {"subject": "Doubt", "toRecipients": [{"emailAddress": {"address": "bob@client.example"}}]}
    with pytest.raises(requests.ConnectionError):
        graph.post(f"{graph_tenant.graph_url}/v1.0/users/ann@example.com/sendMail", json={"message": message})
    assert len(graph_tenant.sent) == 1 and len(graph_tenant.sent_items("ann@example.com")) == 1


def test_permissions_groups_and_unknown_users(graph_tenant: Tenant) -> None:
    ann = graph_tenant.add_user("ann@example.com", "Ann")
    graph_tenant.add_user("bob@example.com", "Bob", enabled=False)
    group = graph_tenant.add_group("Sales", ["ann@example.com", "bob@example.com"])
    graph = _graph(graph_tenant)
    base = graph_tenant.graph_url
    members = graph.get(f"{base}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$select=mail").json()["value"]
    assert [m["mail"] for m in members] == ["ann@example.com", "bob@example.com"]
    enabled = graph.get(f"{base}/v1.0/users", params={"$filter": "accountEnabled eq true", "$select": "id"}).json()["value"]
    assert enabled == [{"id": ann}]
    missing = graph.get(f"{base}/v1.0/users/nobody@example.com/mailFolders/inbox/messages/delta")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ErrorInvalidUser"
    graph_tenant.revoke("User.Read.All", "Mail.Send")
    denied = graph.get(f"{base}/v1.0/users/delta").json()["error"]["code"]
    refused = graph.post(f"{base}/v1.0/users/ann@example.com/sendMail", json={"message": {}}).json()["error"]["code"]
    assert (denied, refused) == ("Authorization_RequestDenied", "ErrorAccessDenied")


def test_fake_graph_runs_outside_pytest() -> None:
    with FakeGraph(latency_seconds=0.01) as server:
        tenant = server.create_tenant()
        tenant.add_user("ann@example.com")
        assert _graph(tenant).get(f"{server.base_url}/v1.0/users").json()["value"][0]["mail"] == "ann@example.com"


def test_enron_messages_fill_a_mailbox_and_come_back_through_delta(graph_tenant: Tenant) -> None:
    user_folder = ENRON_MAILDIR / "allen-p"
    if not user_folder.is_dir():
        pytest.skip(f"the Enron corpus is not at {ENRON_MAILDIR}")
    graph_tenant.add_user("phillip.allen@enron.com", "Phillip K Allen")
    loaded = list(enron_mailbox_messages(user_folder, limit=30))
    for folder, message in loaded:
        graph_tenant.add_message("phillip.allen@enron.com", folder, message)
    graph = _graph(graph_tenant)
    base = f"{graph_tenant.graph_url}/v1.0/users/phillip.allen@enron.com/mailFolders"
    seen = [m for folder in ("inbox", "sentitems") for m in _all_pages(graph, f"{base}/{folder}/messages/delta?$select=from")[0]]
    assert len(seen) == len(loaded) == 30
    assert all("@" in m["from"]["emailAddress"]["address"] for m in seen)
    assert all(m["sentDateTime"].endswith("Z") and m["toRecipients"] is not None for _, m in loaded)
