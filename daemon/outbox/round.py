"""One outbox round as `custody outbox run` and the service's outbox job both do it: send, then read bounces."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from config.policy import DispatchRules
from config.settings import Settings
from daemon.outbox.bounces import collect_bounces
from daemon.outbox.dispatch import Dispatcher
from daemon.outbox.transports import build_transport
from daemon.outbox.transports.base import TransportError
from daemon.outbox.transports.smtp import SmtpTransport


def outbox_round(engine: Engine, settings: Settings, rules: DispatchRules, limit: int | None = None) -> dict[str, Any]:
    """What happened, as the run report's fields plus `bounces`; raises ConfigError without [smtp]."""
    transport = build_transport(settings)
    dispatcher = Dispatcher(engine, rules, transport)
    report = dispatcher.run(limit).as_dict()
    if isinstance(transport, SmtpTransport) and transport.mailbox is not None:
        try:
            report["bounces"] = collect_bounces(engine, transport.mailbox, dispatcher.actor)
        except TransportError as error:
            report["error"] = report["error"] or f"reading bounces: {error}"
        finally:
            transport.mailbox.close()
    return report
