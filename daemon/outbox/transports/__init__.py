"""Ways out for the outbox: each hands a finished message to one delivery system."""

from __future__ import annotations

from config.sections import ConfigError
from config.settings import Settings
from daemon.outbox.transports.base import Transport
from daemon.outbox.transports.smtp import SmtpTransport


def build_transport(settings: Settings) -> Transport:
    """The configured transport; the only place that maps settings to a delivery protocol. The cloud
    ones are imported only when configured: their client libraries cost every command's start."""
    if settings.graph_send is not None:
        from daemon.outbox.transports.graph import GraphTransport

        return GraphTransport(settings.graph_send)
    if settings.gmail_send is not None:
        from daemon.outbox.transports.gmail import GmailTransport

        return GmailTransport(settings.gmail_send)
    if settings.smtp is None:
        raise ConfigError("smtp: no [smtp] section (nor [graph_send] or [gmail_send]), so nothing can be sent "
                          "(use --dry-run DIR to review)")
    return SmtpTransport(settings.smtp)
