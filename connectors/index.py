"""Every source kind custody can sync, by name, imported only when a kind is used.

Adding a kind means adding its module and one line here; the config, the readers and the sync
engine find it through this index and never name a kind themselves.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from connectors.base import Connector, SourceSettings

CONNECTORS: dict[str, str] = {
    "maildir": "connectors.maildir:MaildirConnector",
    "mbox": "connectors.mbox:MboxConnector",
    "vcard": "connectors.vcard:VcardConnector",
    "csv": "connectors.csv_contacts:CsvContactsConnector",
    "imap": "connectors.imap:ImapConnector",
    "graph": "connectors.graph.connector:GraphConnector",
    "google": "connectors.google.connector:GoogleConnector",
}


@cache
def connector_class(kind: str) -> type[Connector[SourceSettings]]:
    module, name = CONNECTORS[kind].split(":")
    found: type[Connector[SourceSettings]] = getattr(import_module(module), name)
    return found


def settings_models() -> tuple[type[SourceSettings], ...]:
    """Every kind's settings model, for the config's union discriminated on `kind`."""
    return tuple(connector_class(kind).settings_model for kind in CONNECTORS)


def open_connector(settings: SourceSettings, batch_size: int = 500) -> Connector[SourceSettings]:
    """The connector that reads a configured source."""
    return connector_class(settings.kind)(settings, batch_size)
