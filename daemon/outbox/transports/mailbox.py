"""The sending account's IMAP side: a copy of each message in Sent, and the bounces in its inbox.

The copy is filed before the message is handed to SMTP, flagged with the keyword PENDING, and
the flag is cleared once the relay has accepted it. A lookup after a crash therefore knows:
no copy means it never reached SMTP, a plain copy means it was sent, and a copy still flagged
pending means the crash hit the SMTP transaction itself, which no client can see into.

Where the relay files each message it accepts itself (`filed_by = "relay"`), custody files nothing:
a copy means sent, and no copy once the relay has had time to file one means it never took the
message, so nothing is left that cannot tell.
"""

from __future__ import annotations

from email.message import EmailMessage

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from config.sections import SentFolderConfig
from connectors.imap import open_connection
from daemon.outbox.transports.base import FilingWait, TransportError, refuse_plain_text_off_loopback

PENDING = "$CustodyPending"
REPORT_READ = "$CustodyReportRead"


class SendingMailbox:
    def __init__(self, config: SentFolderConfig) -> None:
        self.config = config
        self._client: IMAPClient | None = None
        self._selected = ""
        self._relay_copies = FilingWait(config.relay_copy_wait_seconds)

    def file_pending(self, message: EmailMessage) -> None:
        """File the copy flagged pending; failing here means nothing was sent yet."""
        self._guarded(lambda c: c.append(self.config.folder, message.as_bytes(), flags=(PENDING,)))

    def confirm(self, message_id: str) -> None:
        def clear(client: IMAPClient) -> None:
            uids = self._copies(client, message_id)
            if uids:
                client.remove_flags(uids, [PENDING])
        self._guarded(clear)

    def discard_pending(self, message_id: str) -> None:
        """Remove the copy of a message the relay refused, so a later lookup does not mistake it."""
        def discard(client: IMAPClient) -> None:
            uids = self._copies(client, message_id)
            if uids:
                client.delete_messages(uids)
                client.uid_expunge(uids)
        self._guarded(discard)

    def lookup(self, message_id: str) -> bool | None:
        if self.config.filed_by == "relay":
            return self._await_relay_copy(message_id)

        def look(client: IMAPClient) -> bool | None:
            uids = self._copies(client, message_id)
            if not uids:
                return False
            flags = client.get_flags(uids)
            if any(PENDING.encode() not in flags[uid] for uid in flags):
                return True
            return None
        return self._guarded(look)

    def _await_relay_copy(self, message_id: str) -> bool:
        """Whether the relay filed a copy, waiting until it has had `relay_copy_wait_seconds` to do so."""
        return self._relay_copies.found(lambda: self._guarded(lambda c: bool(self._copies(c, message_id))))

    def unread_reports(self) -> dict[int, bytes]:
        """Delivery reports in the bounce folder that custody has not read yet, by UID."""
        def read(client: IMAPClient) -> dict[int, bytes]:
            self._select(client, self.config.bounce_folder)
            uids = client.search(["HEADER", "Content-Type", "multipart/report", "UNKEYWORD", REPORT_READ])
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return {uid: data[b"BODY[]"] for uid, data in fetched.items()}
        return self._guarded(read)

    def mark_reports_read(self, uids: list[int]) -> None:
        if uids:
            self._guarded(lambda c: (self._select(c, self.config.bounce_folder), c.add_flags(uids, [REPORT_READ])))

    def close(self) -> None:
        client, self._client, self._selected = self._client, None, ""
        self._relay_copies.reset()
        if client is not None:
            try:
                client.logout()
            except (OSError, IMAPClientError):
                client.shutdown()

    def _copies(self, client: IMAPClient, message_id: str) -> list[int]:
        self._select(client, self.config.folder)
        return list(client.search(["HEADER", "Message-ID", message_id]))

    def _select(self, client: IMAPClient, folder: str) -> None:
        if self._selected != folder:
            client.select_folder(folder)
            self._selected = folder

    def _guarded(self, operation):  # type: ignore[no-untyped-def]
        """Run one IMAP operation; any failure drops the connection and becomes a TransportError."""
        try:
            return operation(self._connected())
        except (OSError, IMAPClientError) as error:
            self._drop()
            raise TransportError(f"sent folder at {self.config.host}: {type(error).__name__}: {error}",
                                 unreachable=True) from None

    def _connected(self) -> IMAPClient:
        if self._client is None:
            self._client = self._open()
        return self._client

    def _open(self) -> IMAPClient:
        config = self.config
        refuse_plain_text_off_loopback(config.host, config.security, "smtp.sent_folder")
        port = config.port or (993 if config.security == "tls" else 143)
        client = open_connection(config.host, port, config.security, config.ca_file, config.timeout_seconds)
        try:
            client.login(config.username, config.secret())
            if not client.folder_exists(config.folder):
                client.create_folder(config.folder)
        except BaseException:
            client.shutdown()
            raise
        return client

    def _drop(self) -> None:
        client, self._client, self._selected = self._client, None, ""
        if client is not None:
            client.shutdown()
