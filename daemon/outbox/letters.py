"""Change-of-contact letters rendered from Jinja2 templates, one set per step template and locale.

A template set is `{template}.{locale}.subject.j2`, `.txt.j2` and `.html.j2`, looked up first in the
policy's `notifications.template_dir` (a company's own letters; relative to the policy file) and then
among the shipped ones, file by file: a company can replace one part of one letter. Shipped: the
steps `farewell` and `introduction` in en, zh, de, fr, es and ja. A locale is used only when it has a
complete set for every step's template; otherwise its contacts get the policy's default locale.
`custody templates check` renders every set against sample letters and names each file that fails.

HTML autoescapes; every text value handed to a template is made single-line first, and the rendered
subject is sanitised again, so a contact's name can never smuggle a header in.

Letter templates: every variable (built by policies.notification_plan.letter_context)
    locale               the letter's locale, e.g. "de"
    contact_name         the contact's name: address book, else mail header; "" when unknown
    customer_name        the organisation's name from an address book or CRM import; "" when it is known
                         only by its domain or an address (say "you" then)
    company_name         notifications.company_name
    departing_name       the departing rep's name (config or directory, else mail header), else address
    departing_email      the departing rep's address
    successor_name       the successor's name, else address; "" for a customer going to the public pool
    successor_email      the successor's address; "" for the public pool
    successor_copied     true when the successor is copied on this letter
    shared_mailbox       notifications.shared_mailbox
    sender_name          the From display name: the successor's name on the successor's letters,
                         notifications.sender_name (default company_name) on the shared mailbox's
    sender_email         the From address
    signature_lines      the lines to print under sender_name: notifications.signature, one string per
                         line, else company_name unless sender_name already is it
    effective_date       the effective date (a datetime.date)
    effective_date_text  the effective date as the letter's language writes it ("10. Juli 2026",
                         "2026年7月10日"); ISO 8601 for a language without a built-in pattern
    before_effective     true when the letter is planned to go out before the effective date: the
                         letter says what *will* happen, otherwise what did
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateSyntaxError,
    meta,
    select_autoescape,
)

from policies.header_safety import safe_header_text

SHIPPED = Path(__file__).parent / "templates" / "notifications"
_PARTS = ("subject", "txt", "html")
_NAME = re.compile(r"^(?P<template>[a-z][a-z0-9_-]*)\.(?P<locale>[A-Za-z_-]+)\.(?P<part>subject|txt|html)\.j2$")


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body_text: str
    body_html: str


@dataclass(frozen=True)
class SetCheck:
    """One template set as `custody templates check` saw it: where its files come from, what is wrong."""

    template: str
    locale: str
    origin: str
    problems: tuple[str, ...]


class NotificationTemplates:
    def __init__(self, template_dir: Path | None = None) -> None:
        self.template_dir = template_dir
        folders = [template_dir, SHIPPED] if template_dir else [SHIPPED]
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def locales(self, templates: Iterable[str]) -> set[str]:
        """Locales with a complete set (subject, text, HTML) for every one of `templates`."""
        sets = self._sets()
        complete = {key for key, parts in sets.items() if set(parts) == set(_PARTS)}
        wanted = set(templates)
        return {loc for _, loc in complete if all((t, loc) in complete for t in wanted)}

    def render(self, template: str, locale: str, context: Mapping[str, Any]) -> RenderedMessage:
        values = {k: _one_line(v) for k, v in context.items()}
        subject, text, html = (self.env.get_template(f"{template}.{locale}.{part}.j2").render(values) for part in _PARTS)
        return RenderedMessage(safe_header_text(subject, 250), text, html)

    def check(self, step_templates: Iterable[str], default_locale: str,
              samples: Callable[[str], Sequence[Mapping[str, Any]]]) -> list[SetCheck]:
        """Every set of every locale, plus each step template a locale lacks, rendered against each of
        `samples(locale)`. A variable no sample defines is reported even in a branch no sample takes,
        so a misspelt name cannot wait for the one customer whose letter takes that branch."""
        sets = self._sets()
        for locale in {loc for _, loc in sets} | {default_locale}:
            for template in step_templates:
                sets.setdefault((template, locale), {})
        return [self._check_set(template, locale, sets[(template, locale)], samples(locale))
                for template, locale in sorted(sets)]

    def misnamed(self) -> list[Path]:
        """Files in the company's folder that look like templates but will never be used."""
        if not self.template_dir or not self.template_dir.is_dir():
            return []
        return sorted(p for p in self.template_dir.iterdir() if p.suffix == ".j2" and not _NAME.match(p.name))

    def _sets(self) -> dict[tuple[str, str], dict[str, str]]:
        """Template file names by (template, locale) and part, over the company's and the shipped folder."""
        sets: dict[tuple[str, str], dict[str, str]] = {}
        for name in self.env.list_templates():
            found = _NAME.match(name)
            if found:
                sets.setdefault((found["template"], found["locale"]), {})[found["part"]] = name
        return sets

    def _check_set(self, template: str, locale: str, parts: Mapping[str, str],
                   samples: Sequence[Mapping[str, Any]]) -> SetCheck:
        missing = [f"{template}.{locale}.{part}.j2" for part in _PARTS if part not in parts]
        problems = [f"missing {', '.join(missing)}"] if missing else []
        known = set().union(*samples) | set(self.env.globals)
        paths = []
        for part in _PARTS:
            if part in parts:
                source, path = self._source(parts[part])
                paths.append(path)
                problems += self._check_part(parts[part], source, path, known, samples)
        origin = "+".join(sorted({"company" if self._is_company(path) else "shipped" for path in paths}))
        return SetCheck(template, locale, origin or "nowhere", tuple(problems))

    def _check_part(self, name: str, source: str, path: Path, known: set[str],
                    samples: Sequence[Mapping[str, Any]]) -> list[str]:
        try:
            unknown = meta.find_undeclared_variables(self.env.parse(source)) - known
            if unknown:
                return [f"{path}: unknown variable {', '.join(sorted(unknown))}"]
            template = self.env.get_template(name)
            for sample in samples:
                text = template.render({k: _one_line(v) for k, v in sample.items()})
                if name.endswith(".txt.j2") and any(line.startswith("From ") for line in text.splitlines()):
                    return [f"{path}: a line starts with \"From \", which mail software rewrites to \">From \""]
        except TemplateSyntaxError as error:
            return [f"{path}:{error.lineno}: {error.message}"]
        except Exception as error:  # whatever a template raises would stop the planning of a handover
            return [f"{path}: {type(error).__name__}: {error}"]
        return []

    def _source(self, name: str) -> tuple[str, Path]:
        source, filename, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        return source, Path(filename)  # type: ignore[arg-type]

    def _is_company(self, path: Path) -> bool:
        return self.template_dir is not None and path.parent.resolve() == self.template_dir.resolve()


def _one_line(value: Any) -> Any:
    """Text as safe display text; a tuple (signature lines) line by line, so it keeps its lines."""
    if isinstance(value, str):
        return safe_header_text(value, 256)
    if isinstance(value, tuple):
        return tuple(_one_line(item) for item in value)
    return value
