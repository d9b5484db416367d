"""`custody templates check`: every letter in every language renders before a customer's letter depends on it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import typer

from config.policy import NotificationRules, Policy
from config.sections import ConfigError
from daemon.outbox.letters import NotificationTemplates, SetCheck
from daemon.runtime import CONFIG_EXIT, Runtime
from policies.notification_plan import LetterNames, PlannedMessage, letter_context
from registry.departure_values import RepProfile

templates_app = typer.Typer(help="The change-of-contact letter templates.", no_args_is_help=True)
_EFFECTIVE = datetime(2026, 7, 1, tzinfo=timezone.utc)
_SUCCESSOR = RepProfile(2, "successor@company.example", "Sam Successor")


@templates_app.command("check")
def check(ctx: typer.Context) -> None:
    """Render every template set, shipped and the policy's template_dir, against sample letters: one
    line per set, exit 1 when any fails (syntax, unknown variable, missing part or step)."""
    rules = _policy(ctx).notifications
    folder = rules.template_dir
    if folder is not None and not folder.is_dir():
        typer.echo(f"FAIL  notifications.template_dir {folder}: not a folder")
        raise typer.Exit(1)
    templates = NotificationTemplates(folder)
    results = templates.check([*(step.template for step in rules.steps), "correction"], rules.default_locale,
                              lambda locale: sample_contexts(rules, locale))
    for result in results:
        typer.echo(_line(result))
    misnamed = templates.misnamed()
    for path in misnamed:
        typer.echo(f"FAIL  {path}: never used, a template is named {{template}}.{{locale}}.subject|txt|html.j2")
    if misnamed or any(result.problems for result in results):
        raise typer.Exit(1)


def sample_contexts(rules: NotificationRules, locale: str) -> list[dict[str, Any]]:
    """Letters that take every branch the shipped templates have: a successor before and after the
    effective date, copied or writing, and a public-pool customer whose contact has no known name."""
    shared = rules.shared_mailbox or "customers@company.example"
    named = LetterNames("Kim Contact", "Acme", "Dana Departing", "dana@company.example")
    unnamed = LetterNames("", "", "", "dana@company.example")
    return [
        letter_context(_sample(locale, shared, (_SUCCESSOR.email,), before=True), named, _SUCCESSOR, rules, _EFFECTIVE),
        letter_context(_sample(locale, _SUCCESSOR.email, (), before=False), named, _SUCCESSOR, rules, _EFFECTIVE),
        letter_context(_sample(locale, shared, (), before=True), unnamed, None, rules, _EFFECTIVE),
        letter_context(_sample(locale, shared, (), before=False), unnamed, None, rules, _EFFECTIVE),
    ]


def _sample(locale: str, sender: str, cc: tuple[str, ...], before: bool) -> PlannedMessage:
    return PlannedMessage(
        idempotency_key="sample", message_id_header="<sample@company.example>", customer_id=1, contact_id=1,
        contact_point_id=1, step="sample", template="sample", sender_email=sender, to_email="kim@acme.example",
        cc_emails=cc, locale=locale, send_after=_EFFECTIVE + timedelta(days=-2 if before else 2))


def _line(result: SetCheck) -> str:
    status = "FAIL" if result.problems else "ok  "
    name = f"{result.template}.{result.locale}"
    return f"{status}  {name:<20} {result.origin}" + "".join(f"  {problem}" for problem in result.problems)


def _policy(ctx: typer.Context) -> Policy:
    """The policy alone: checking templates needs no registry, so it also runs where no database is reachable."""
    rt: Runtime = ctx.obj
    try:
        return rt.policy
    except ConfigError as error:
        typer.echo(f"custody: config error: {error}", err=True)
        raise typer.Exit(CONFIG_EXIT) from None
