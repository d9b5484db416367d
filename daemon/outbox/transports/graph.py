"""Microsoft Graph: each letter through `POST /users/{mailbox}/sendMail`, with a copy saved to Sent Items.

sendMail answers 202 with no body and no id, and the Sent Items copy keeps no x- headers, so each
message carries custody's Message-ID twice: as its internetMessageId, and in a single-value extended
property of custody's own, which the copy keeps and a `$filter` on Sent Items finds. sendMail is
never repeated by the client once the request may have reached Graph (`replay_safe=False`): such a
send is in doubt, and looked up by that property before anything else happens to it.
"""

from __future__ import annotations

from collections.abc import Collection
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from config.sections import GraphSendConfig
from connectors.errors import ConnectorError
from connectors.graph.client import GraphClient, Unanswered
from daemon.outbox.transports.base import FilingWait, TransportError, refused_send

PROPERTY_ID = "String {484EC4C3-1262-468F-9814-DC2817ABE822} Name CustodyMessageId"
"""custody's own named property (its GUID is custody's property set): the Message-ID, kept by the Sent Items copy."""
SEND = "Mail.Send"
READ = "Mail.Read"


class GraphTransport:
    def __init__(self, config: GraphSendConfig) -> None:
        self.config = config
        self.client = GraphClient(config)
        self._filing = FilingWait(config.sent_copy_wait_seconds)

    def send(self, message: EmailMessage, already: Collection[str] = ()) -> None:
        """One sendMail from the configured mailbox, or else from the sender's own; the From stays the
        letter's sender either way (from a shared mailbox that needs Send As rights on it in Exchange)."""
        mailbox = self._mailbox(message["From"].addresses[0].addr_spec)
        self._sign_in()
        payload = {"message": graph_message(message, already), "saveToSentItems": True}
        try:
            self.client.request(mailbox, "POST", f"{_user(mailbox)}/sendMail", SEND, replay_safe=False, json=payload)
        except ConnectorError as error:
            raise classify(error) from None

    def find_sent(self, message_id: str, sender: str) -> bool | None:
        """Whether the copy is in Sent Items, waiting for Exchange to file it (it does so after accepting)."""
        mailbox = self._mailbox(sender)
        try:
            return self._filing.found(lambda: self._filed(mailbox, message_id))
        except ConnectorError as error:
            raise TransportError(f"cannot look in the Sent Items of {mailbox}: {error}", unreachable=True) from None

    def close(self) -> None:
        self.client.close()
        self._filing.reset()

    def _sign_in(self) -> None:
        """A token first, so that a refused or unusable app registration stops the run instead of failing
        each message in turn (msal caches the token, so this costs a request only when it expires)."""
        try:
            self.client.tokens.token()
        except ConnectorError as error:
            raise TransportError(str(error), unreachable=True) from None

    def _filed(self, mailbox: str, message_id: str) -> bool:
        wanted = message_id.replace("'", "''")
        params = {"$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROPERTY_ID}' and ep/value eq '{wanted}')",
                  "$select": "id"}
        return bool(self.client.get(mailbox, f"{_user(mailbox)}/mailFolders/sentitems/messages", READ, params).get("value"))

    def _mailbox(self, sender: str) -> str:
        return self.config.mailbox or sender


def graph_message(message: EmailMessage, already: Collection[str] = ()) -> dict[str, Any]:
    """The composed message as Graph's message resource, without the recipients `already` reached. Of
    its own headers only the x- ones go along: Graph refuses any other in internetMessageHeaders."""
    skip = {address.lower() for address in already}
    message_id = str(message["Message-ID"])
    resource: dict[str, Any] = {
        "subject": str(message["Subject"] or ""),
        "from": _recipients(message, "From", set())[0],
        "body": _body(message),
        "toRecipients": _recipients(message, "To", skip),
        "ccRecipients": _recipients(message, "Cc", skip),
        "bccRecipients": _recipients(message, "Bcc", skip),
        "replyTo": _recipients(message, "Reply-To", set()),
        "internetMessageId": message_id,
        "singleValueExtendedProperties": [{"id": PROPERTY_ID, "value": message_id}],
    }
    headers = [{"name": name, "value": str(value)} for name, value in message.items() if name.lower().startswith("x-")]
    if headers:
        resource["internetMessageHeaders"] = headers
    return resource


def classify(error: ConnectorError) -> TransportError:
    """A sendMail with no answer once the request went out (or a gateway error) is in doubt, looked up
    before any retry; any other failure is what `refused_send` says."""
    if isinstance(error, Unanswered):
        return TransportError(str(error), in_doubt=True)
    return refused_send(error)


def _user(mailbox: str) -> str:
    return f"/users/{quote(mailbox, safe='@')}"


def _body(message: EmailMessage) -> dict[str, str]:
    """The HTML alternative when there is one, else the text."""
    part = message.get_body(("html", "plain"))
    if part is None:
        return {"contentType": "Text", "content": ""}
    return {"contentType": "HTML" if part.get_content_subtype() == "html" else "Text", "content": part.get_content()}


def _recipients(message: EmailMessage, header: str, skip: set[str]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": address.addr_spec, **({"name": address.display_name} if address.display_name else {})}}
            for value in message.get_all(header, []) for address in value.addresses if address.addr_spec.lower() not in skip]
