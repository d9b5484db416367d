"""Change-of-contact messages rendered from Jinja2 templates, one set per step template and locale.

A template set is `{template}.{locale}.subject.j2`, `.txt.j2` and `.html.j2`, looked up first in the
policy's template_dir and then among the shipped ones. HTML autoescapes; every text value handed to
a template is made single-line first, and the rendered subject is sanitised again, so a contact's
name can never smuggle a header in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from policies.header_safety import safe_header_text

SHIPPED = Path(__file__).parent / "templates" / "notifications"
_PARTS = ("subject", "txt", "html")
_NAME = re.compile(r"^(?P<template>[a-z][a-z0-9_-]*)\.(?P<locale>[A-Za-z_-]+)\.(?P<part>subject|txt|html)\.j2$")


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body_text: str
    body_html: str


class NotificationTemplates:
    def __init__(self, template_dir: Path | None = None) -> None:
        folders = [template_dir, SHIPPED] if template_dir else [SHIPPED]
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def locales(self, templates: Iterable[str]) -> set[str]:
        """Locales with a complete set (subject, text, HTML) for every one of `templates`."""
        parts: dict[tuple[str, str], set[str]] = {}
        for name in self.env.list_templates():
            found = _NAME.match(name)
            if found:
                parts.setdefault((found["template"], found["locale"]), set()).add(found["part"])
        wanted = set(templates)
        complete = {(t, loc) for (t, loc), p in parts.items() if p == set(_PARTS)}
        return {loc for _, loc in complete if all((t, loc) in complete for t in wanted)}

    def render(self, template: str, locale: str, context: Mapping[str, Any]) -> RenderedMessage:
        values = {k: safe_header_text(v, 256) if isinstance(v, str) else v for k, v in context.items()}
        subject, text, html = (self.env.get_template(f"{template}.{locale}.{part}.j2").render(values) for part in _PARTS)
        return RenderedMessage(safe_header_text(subject, 250), text, html)
