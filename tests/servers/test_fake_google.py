"""The fake Google answers google-auth and google-api-python-client the way the documented services do."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.request
from email.parser import BytesHeaderParser
from typing import Any
from urllib.error import HTTPError as UrlHTTPError

import google.auth.transport.requests
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import Resource, build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from tests.servers.enron_folders import ENRON_MAILDIR
from tests.servers.gmail_corpus import enron_gmail_messages
from tests.servers.google import SCOPE, FakeGoogle, Workspace

READONLY, METADATA, SEND = SCOPE + "gmail.readonly", SCOPE + "gmail.metadata", SCOPE + "gmail.send"
CONTACTS, USERS, MEMBERS = SCOPE + "contacts.readonly", SCOPE + "admin.directory.user.readonly", \
    SCOPE + "admin.directory.group.member.readonly"
APIS = {"gmail": "v1", "people": "v1", "admin": "directory_v1"}


def _service(workspace: Workspace, api: str, user: str, *scopes: str) -> Resource:
    """A real client of one API, impersonating the user through the workspace's service account."""
    credentials = service_account.Credentials.from_service_account_info(
        workspace.service_account_info, scopes=list(scopes)).with_subject(user)
    return build(api, APIS[api], credentials=credentials, static_discovery=True, cache_discovery=False,
                 client_options={"api_endpoint": workspace.server.base_url})


def _raw(message_id: str, to: str = "ann@acme.test", subject: str = "Hello", extra: str = "",
         date: str = "Mon, 01 Jan 2024 10:00:00 +0000") -> bytes:
    return (f"From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: {message_id}\r\n{extra}\r\nA short body line.\r\n").encode()


def _reason(error: HttpError) -> dict[str, Any]:
    return json.loads(error.content)["error"]


def _http_status(url: str, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request) as answer:
            return answer.status, json.loads(answer.read())
    except UrlHTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def ann(google_workspace: Workspace) -> str:
    google_workspace.add_user("ann@acme.test", "Ann Archer", department="Sales", admin=True)
    return "ann@acme.test"


def test_service_account_tokens_follow_domain_wide_delegation(google_workspace: Workspace, ann: str) -> None:
    gmail = _service(google_workspace, "gmail", ann, READONLY)
    assert gmail.users().getProfile(userId="me").execute()["emailAddress"] == ann
    with pytest.raises(RefreshError, match="unauthorized_client"):
        _service(google_workspace, "gmail", ann, SCOPE + "gmail.modify").users().getProfile(userId="me").execute()
    with pytest.raises(RefreshError, match="invalid_grant.*Invalid email or User ID"):
        _service(google_workspace, "gmail", "nobody@acme.test", READONLY).users().getProfile(userId="me").execute()
    google_workspace.delegate(SCOPE + "gmail.modify")
    assert _service(google_workspace, "gmail", ann, SCOPE + "gmail.modify").users().getProfile(userId="me").execute()
    assert google_workspace.token_requests == 4


def test_calls_need_a_live_token_with_a_fitting_scope(google_workspace: Workspace, ann: str) -> None:
    url = f"{google_workspace.server.base_url}/gmail/v1/users/me/profile"
    status, body = _http_status(url, None)
    assert status == 401 and body["error"]["errors"][0]["reason"] == "required"
    status, body = _http_status(url, "ya29.forged")
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    people = _service(google_workspace, "people", ann, READONLY)
    with pytest.raises(HttpError) as refused:
        people.people().connections().list(resourceName="people/me", personFields="names").execute()
    assert refused.value.status_code == 403
    assert _reason(refused.value)["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    google_workspace.add_user("cid@acme.test")
    with pytest.raises(HttpError, match="Delegation denied for ann@acme.test"):
        _service(google_workspace, "gmail", ann, READONLY).users().getProfile(userId="cid@acme.test").execute()


def test_messages_list_pages_filters_and_hides_spam(google_workspace: Workspace, ann: str) -> None:
    ids = [google_workspace.add_message(ann, _raw(f"<m{n}@example.org>", date=f"Mon, 0{n + 1} Jan 2024 10:00:00 +0000"))
           for n in range(5)]
    google_workspace.add_message(ann, _raw("<spam@example.org>"), labels=("SPAM",))
    google_workspace.add_message(ann, _raw("<out@example.org>"), labels=("SENT",))
    gmail = _service(google_workspace, "gmail", ann, READONLY).users().messages()
    first = gmail.list(userId="me", maxResults=4, labelIds=["INBOX"]).execute()
    second = gmail.list(userId="me", maxResults=4, labelIds=["INBOX"], pageToken=first["nextPageToken"]).execute()
    listed = [m["id"] for m in first["messages"] + second["messages"]]
    assert listed == ids[::-1] and "nextPageToken" not in second and first["resultSizeEstimate"] == 5
    assert len(gmail.list(userId="me").execute()["messages"]) == 6
    assert len(gmail.list(userId="me", includeSpamTrash=True).execute()["messages"]) == 7
    assert gmail.list(userId="me", labelIds=["TRASH"]).execute() == {"resultSizeEstimate": 0}
    assert [m["id"] for m in gmail.list(userId="me", q="rfc822msgid:<m3@example.org>").execute()["messages"]] == [ids[3]]
    assert len(gmail.list(userId="me", q="in:sent").execute()["messages"]) == 1
    with pytest.raises(HttpError) as unsupported:
        gmail.list(userId="me", q="from:bob").execute()
    assert unsupported.value.status_code == 400


def test_metadata_scope_refuses_q_and_full_formats_even_beside_readonly(google_workspace: Workspace, ann: str) -> None:
    message_id = google_workspace.add_message(ann, _raw("<m@example.org>", extra="X-Custody: 1\r\n"))
    gmail = _service(google_workspace, "gmail", ann, METADATA, READONLY).users().messages()
    with pytest.raises(HttpError) as refused:
        gmail.list(userId="me", q="rfc822msgid:m@example.org").execute()
    assert refused.value.status_code == 403
    assert _reason(refused.value)["message"] == "Metadata scope does not support 'q' parameter"
    with pytest.raises(HttpError, match="Metadata scope doesn't allow format RAW"):
        gmail.get(userId="me", id=message_id, format="raw").execute()
    got = gmail.get(userId="me", id=message_id, format="metadata", metadataHeaders=["x-custody", "From", "Message-ID"]).execute()
    assert [h["name"] for h in got["payload"]["headers"]] == ["From", "Message-ID", "X-Custody"]
    assert got["labelIds"] == ["INBOX"] and got["internalDate"] == "1704103200000" and got["snippet"] == "A short body line."
    minimal = gmail.get(userId="me", id=message_id, format="minimal").execute()
    assert "payload" not in minimal and minimal["historyId"] == got["historyId"]
    with pytest.raises(HttpError) as missing:
        gmail.get(userId="me", id="0123456789abcdef", format="metadata").execute()
    assert missing.value.status_code == 404 and _reason(missing.value)["errors"][0]["reason"] == "notFound"


def test_history_reports_changes_after_a_point_then_expires(google_workspace: Workspace, ann: str) -> None:
    gmail = _service(google_workspace, "gmail", ann, READONLY).users()
    start = gmail.getProfile(userId="me").execute()["historyId"]
    added = google_workspace.add_message(ann, _raw("<h1@example.org>"))
    google_workspace.relabel(ann, added, add=("STARRED",), remove=("INBOX",))
    google_workspace.delete_message(ann, added)
    history = gmail.history().list(userId="me", startHistoryId=start).execute()
    kinds = [next(k for k in record if k not in ("id", "messages")) for record in history["history"]]
    assert kinds == ["messagesAdded", "labelsAdded", "labelsRemoved", "messagesDeleted"]
    assert history["history"][1]["labelsAdded"][0]["labelIds"] == ["STARRED"]
    ids = [int(record["id"]) for record in history["history"]]
    assert ids == sorted(ids) and ids[0] > int(start) and history["historyId"] == str(ids[-1])
    only_added = gmail.history().list(userId="me", startHistoryId=start, historyTypes=["messageAdded"]).execute()
    assert len(only_added["history"]) == 1
    assert "history" not in gmail.history().list(userId="me", startHistoryId=history["historyId"]).execute()
    google_workspace.expire_history(ann)
    with pytest.raises(HttpError) as expired:
        gmail.history().list(userId="me", startHistoryId=history["historyId"]).execute()
    assert expired.value.status_code == 404 and _reason(expired.value)["status"] == "NOT_FOUND"
    fresh = gmail.getProfile(userId="me").execute()["historyId"]
    assert gmail.history().list(userId="me", startHistoryId=fresh).execute()["historyId"] == fresh


def test_send_delivers_and_keeps_or_replaces_the_message_id(google_workspace: Workspace, ann: str) -> None:
    google_workspace.add_user("bea@acme.test")
    gmail = _service(google_workspace, "gmail", ann, SEND, READONLY).users().messages()
    raw = base64.urlsafe_b64encode(_raw("<custody-1@acme.test>", to="bea@acme.test, out@example.org")).decode()
    sent = gmail.send(userId="me", body={"raw": raw}).execute()
    assert sent["labelIds"] == ["SENT"] and google_workspace.sent[-1]["id"] == sent["id"]
    assert gmail.list(userId="me", q="rfc822msgid:custody-1@acme.test").execute()["messages"][0]["id"] == sent["id"]
    assert [m["labelIds"] for m in google_workspace.messages("bea@acme.test")] == [["INBOX", "UNREAD"]]
    google_workspace.replace_message_ids = True
    gmail.send(userId="me", body={"raw": base64.urlsafe_b64encode(_raw("<custody-2@acme.test>")).decode()}).execute()
    headers = BytesHeaderParser().parsebytes(google_workspace.sent[-1]["raw"])
    assert headers["Message-ID"].endswith("@mail.gmail.com>")
    assert headers["X-Google-Original-Message-ID"] == "<custody-2@acme.test>"
    assert "messages" not in gmail.list(userId="me", q="rfc822msgid:custody-2@acme.test").execute()
    with pytest.raises(HttpError, match="Recipient address required"):
        gmail.send(userId="me", body={"raw": base64.urlsafe_b64encode(b"Subject: x\r\n\r\nbody").decode()}).execute()
    assert google_workspace.units[ann] == 100 + 5 + 100 + 5 + 100


def test_a_send_in_doubt_is_delivered_but_unanswered(google_workspace: Workspace, ann: str) -> None:
    google_workspace.crash_after_send(ann)
    credentials = service_account.Credentials.from_service_account_info(
        google_workspace.service_account_info, scopes=[SEND]).with_subject(ann)
    credentials.refresh(google.auth.transport.requests.Request())
    url = f"{google_workspace.server.base_url}/gmail/v1/users/me/messages/send"
    body = json.dumps({"raw": base64.urlsafe_b64encode(_raw("<doubt@acme.test>")).decode()}).encode()
    request = urllib.request.Request(url, body, {"Authorization": f"Bearer {credentials.token}",
                                                "Content-Type": "application/json"})
    with pytest.raises(http.client.RemoteDisconnected):
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request)
    assert len(google_workspace.sent) == 1 and google_workspace.messages(ann)[0]["labelIds"] == ["SENT"]


def test_httplib2_silently_resends_a_post_whose_connection_dropped(google_workspace: Workspace, ann: str) -> None:
    """httplib2 retries once on a connection closed before the status line, whatever the method: a hazard for sends."""
    google_workspace.crash_after_send(ann)
    gmail = _service(google_workspace, "gmail", ann, SEND).users().messages()
    gmail.send(userId="me", body={"raw": base64.urlsafe_b64encode(_raw("<twice@acme.test>")).decode()}).execute()
    assert len(google_workspace.sent) == 2


def test_batch_answers_each_call_and_may_throttle_some(google_workspace: Workspace, ann: str) -> None:
    ids = [google_workspace.add_message(ann, _raw(f"<b{n}@example.org>")) for n in range(3)]
    gmail = _service(google_workspace, "gmail", ann, METADATA)
    results: dict[str, Any] = {}
    batch = BatchHttpRequest(batch_uri=google_workspace.server.base_url + "/batch/gmail/v1",
                             callback=lambda request_id, response, error: results.update({request_id: response or error}))
    for message_id in ids:
        batch.add(gmail.users().messages().get(userId="me", id=message_id, format="metadata", metadataHeaders=["Message-ID"]),
                  request_id=message_id)
    google_workspace.throttle(ann, 1)
    batch.execute()
    errors = [r for r in results.values() if isinstance(r, HttpError)]
    assert len(errors) == 1 and errors[0].status_code == 429 and "User-rate limit exceeded.  Retry after" in str(errors[0])
    good = {k: v for k, v in results.items() if not isinstance(v, HttpError)}
    assert all(v["id"] == k and v["payload"]["headers"][0]["name"] == "Message-ID" for k, v in good.items())
    assert google_workspace.units[ann] == 10 and len(google_workspace.requests[ann]) == 3
    too_many = BatchHttpRequest(batch_uri=google_workspace.server.base_url + "/batch")
    for n in range(101):
        too_many.add(gmail.users().messages().get(userId="me", id=ids[0], format="minimal"), request_id=str(n))
    with pytest.raises(HttpError, match="Inner request count exceeds the limit. Received: 101, Limit: 100"):
        too_many.execute()


def test_quota_faults_and_concurrency(google_workspace: Workspace, ann: str) -> None:
    gmail = _service(google_workspace, "gmail", ann, READONLY).users()
    google_workspace.units_per_minute = 10
    for _ in range(2):
        gmail.messages().list(userId="me").execute()
    with pytest.raises(HttpError) as limited:
        gmail.getProfile(userId="me").execute()
    assert limited.value.status_code == 429 and _reason(limited.value)["errors"][0]["reason"] == "rateLimitExceeded"
    google_workspace.units_per_minute = 15_000
    google_workspace.throttle(ann, 1, status=403, reason="userRateLimitExceeded")
    google_workspace.fail(ann, 1)
    with pytest.raises(HttpError) as documented:
        gmail.getProfile(userId="me").execute()
    assert documented.value.status_code == 403 and _reason(documented.value)["errors"][0]["domain"] == "usageLimits"
    with pytest.raises(HttpError) as unavailable:
        gmail.getProfile(userId="me").execute()
    assert unavailable.value.status_code == 503
    google_workspace.latency_seconds = 0.2
    google_workspace.user_concurrency = 2
    outcomes: list[int] = []

    def call() -> None:
        try:
            _service(google_workspace, "gmail", ann, READONLY).users().getProfile(userId="me").execute()
            outcomes.append(200)
        except HttpError as error:
            outcomes.append(error.status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [200, 200, 429, 429] and google_workspace.max_concurrency_seen[ann] == 2


def test_people_connections_page_then_sync_changes_until_expiry(google_workspace: Workspace, ann: str) -> None:
    names = [google_workspace.add_contact(ann, {"names": [{"displayName": f"C{n}"}], "emailAddresses": [{"value": f"{n}@x.t"}]})
             for n in range(3)]
    people = _service(google_workspace, "people", ann, CONTACTS).people().connections()
    listing = {"resourceName": "people/me", "personFields": "names,emailAddresses", "pageSize": 2, "requestSyncToken": True}
    first = people.list(**listing).execute()
    last = people.list(**listing, pageToken=first["nextPageToken"]).execute()
    assert [p["resourceName"] for p in first["connections"] + last["connections"]] == names
    assert "nextSyncToken" not in first and first["totalPeople"] == 3 and "metadata" not in first["connections"][0]
    google_workspace.update_contact(ann, names[0], {"phoneNumbers": [{"value": "+1 555"}]})
    google_workspace.delete_contact(ann, names[1])
    changes = people.list(resourceName="people/me", personFields="names,phoneNumbers", syncToken=last["nextSyncToken"]).execute()
    assert [(p["resourceName"], p.get("metadata", {}).get("deleted", False)) for p in changes["connections"]] == \
        [(names[0], False), (names[1], True)]
    assert changes["connections"][0]["phoneNumbers"] == [{"value": "+1 555"}] and changes["nextSyncToken"]
    google_workspace.expire_sync_tokens(ann)
    with pytest.raises(HttpError) as expired:
        people.list(resourceName="people/me", personFields="names", syncToken=changes["nextSyncToken"]).execute()
    error = _reason(expired.value)
    assert expired.value.status_code == 400 and error["details"][0]["reason"] == "EXPIRED_SYNC_TOKEN"
    with pytest.raises(HttpError, match="personFields mask is required"):
        people.list(resourceName="people/me").execute()


def test_directory_users_groups_and_admin_rights(google_workspace: Workspace, ann: str) -> None:
    google_workspace.add_user("bea@acme.test", "Bea Baker", department="Ops", manager=ann, aliases=("b@acme.test",))
    google_workspace.add_user("cy@acme.test", suspended=True)
    google_workspace.add_group("team@acme.test", ["bea@acme.test", "inner@acme.test"])
    google_workspace.add_group("inner@acme.test", ["cy@acme.test", "bea@acme.test"])
    admin = _service(google_workspace, "admin", ann, USERS, MEMBERS)
    first = admin.users().list(customer="my_customer", maxResults=2).execute()
    rest = admin.users().list(customer="my_customer", maxResults=2, pageToken=first["nextPageToken"]).execute()
    users = {u["primaryEmail"]: u for u in first["users"] + rest["users"]}
    assert sorted(users) == ["ann@acme.test", "bea@acme.test", "cy@acme.test"] and "nextPageToken" not in rest
    bea = users["bea@acme.test"]
    assert bea["relations"] == [{"value": ann, "type": "manager"}] and bea["organizations"][0]["department"] == "Ops"
    assert bea["aliases"] == ["b@acme.test"] and users["cy@acme.test"]["suspended"] and "aliases" not in users[ann]
    assert admin.users().get(userKey="b@acme.test").execute()["id"] == bea["id"]
    direct = admin.members().list(groupKey="team@acme.test").execute()["members"]
    assert [(m["email"], m["type"]) for m in direct] == [("bea@acme.test", "USER"), ("inner@acme.test", "GROUP")]
    derived = admin.members().list(groupKey="team@acme.test", includeDerivedMembership=True).execute()["members"]
    assert [m["email"] for m in derived] == ["bea@acme.test", "cy@acme.test"]
    with pytest.raises(HttpError, match="Not Authorized to access this resource/api"):
        _service(google_workspace, "admin", "bea@acme.test", USERS).users().list(customer="my_customer").execute()
    google_workspace.delete_user("bea@acme.test")
    deleted = admin.users().list(customer="my_customer", showDeleted="true").execute()["users"]
    assert [u["primaryEmail"] for u in deleted] == ["bea@acme.test"]
    with pytest.raises(RefreshError, match="The account has been deleted"):
        _service(google_workspace, "gmail", "bea@acme.test", READONLY).users().getProfile(userId="me").execute()


def test_fake_google_runs_outside_pytest() -> None:
    with FakeGoogle() as server:
        workspace = server.create_workspace("other.test")
        workspace.add_user("x@other.test")
        assert workspace.service_account_info["token_uri"] == f"{server.base_url}/token"
        profile = _service(workspace, "gmail", "x@other.test", READONLY).users().getProfile(userId="me").execute()
        assert profile["messagesTotal"] == 0


@pytest.mark.skipif(not ENRON_MAILDIR.is_dir(), reason="Enron corpus not present")
def test_enron_messages_fill_a_mailbox(google_workspace: Workspace, ann: str) -> None:
    loaded = list(enron_gmail_messages(ENRON_MAILDIR / "allen-p", limit=80))
    for raw, labels in loaded:
        google_workspace.add_message(ann, raw, labels)
    gmail = _service(google_workspace, "gmail", ann, READONLY).users().messages()
    listed = gmail.list(userId="me", maxResults=500).execute()["messages"]
    assert len(listed) == len(loaded) == 80
    got = gmail.get(userId="me", id=listed[0]["id"], format="metadata", metadataHeaders=["Message-ID", "From"]).execute()
    message_id = next(h["value"] for h in got["payload"]["headers"] if h["name"] == "Message-ID")
    assert message_id.endswith("JavaMail.evans@thyme>")
    assert gmail.list(userId="me", q=f"rfc822msgid:{message_id}").execute()["messages"][0]["id"] == listed[0]["id"]
