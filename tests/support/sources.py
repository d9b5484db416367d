"""Connectors opened the way a config entry opens them, for tests that read one source directly."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector


def opened(connector: type[Connector[Any]], batch_size: int = 500, **fields: Any) -> Connector[Any]:
    """A `connector` for a source entry with `fields`; validated like the config file, so a test
    cannot build a source the config would refuse."""
    settings = connector.settings_model.model_validate({"name": f"test-{connector.kind}", **fields})
    return connector(settings, batch_size)
