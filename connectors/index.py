"""Every source kind custody can sync, by name: its settings model and its connector, each imported
only when asked for.

Adding a kind means adding its module and one line here; the config, the readers and the sync
engine find it through this index and never name a kind themselves. The config needs only the
settings models, so loading it never imports a cloud client library (msal, googleapiclient), which
every command would otherwise pay for at start.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any, NamedTuple

from connectors.base import Connector, SourceSettings


class Kind(NamedTuple):
    connector: str
    settings: str


KINDS: dict[str, Kind] = {
    "maildir": Kind("connectors.maildir:MaildirConnector", "connectors.maildir:MaildirSettings"),
    "mbox": Kind("connectors.mbox:MboxConnector", "connectors.mbox:MboxSettings"),
    "vcard": Kind("connectors.vcard:VcardConnector", "connectors.vcard:VcardSettings"),
    "csv": Kind("connectors.csv_contacts:CsvContactsConnector", "connectors.csv_contacts:CsvSettings"),
    "imap": Kind("connectors.imap:ImapConnector", "connectors.imap:ImapSettings"),
    "graph": Kind("connectors.graph.connector:GraphConnector", "connectors.graph.settings:GraphSettings"),
    "google": Kind("connectors.google.connector:GoogleConnector", "connectors.google.settings:GoogleSettings"),
}


def _named(path: str) -> Any:
    module, name = path.split(":")
    return getattr(import_module(module), name)


@cache
def connector_class(kind: str) -> type[Connector[SourceSettings]]:
    found: type[Connector[SourceSettings]] = _named(KINDS[kind].connector)
    return found


def settings_models() -> tuple[type[SourceSettings], ...]:
    """Every kind's settings model, for the config's union discriminated on `kind`."""
    return tuple(_named(kind.settings) for kind in KINDS.values())


def open_connector(settings: SourceSettings, batch_size: int = 500) -> Connector[SourceSettings]:
    """The connector that reads a configured source."""
    return connector_class(settings.kind)(settings, batch_size)
