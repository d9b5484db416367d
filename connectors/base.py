"""The connector contract: one protocol in, batches of plain records out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from connectors.records import Batch


class ConnectorError(Exception):
    """A source-level failure (credentials, unreachable server) that marks the source failing."""


class Connector(Protocol):
    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        """Yield batches after `cursor`; each batch's cursor resumes right after it."""
        ...
