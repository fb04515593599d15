"""Every check id, defined once: ``W030 = Template("W030", "message {with} values", hint=...)``.

Django's own checks are constants (``W001 = Warning(..., id="security.W001")``); ours name the
view, record or setting they are about, so each is a template called with those values:
``W030(name=...)`` returns the ``Warning``. The level follows the id's letter (E: ``Error``,
W: ``Warning``, I: ``Info``). ``REGISTRY`` holds them all once the topic modules are imported
(``import django_aws_api_gateway_websockets.checks``); tests/test_checks.py compares it with
docs/checks.md.

A message or hint may be a dict of variants when one id says the same thing two ways (W049: the
settings or a view's own limit); ``W049(variant="view", ...)`` picks one.
"""

import sys
from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Info, Warning

NAMESPACE = "aws_websockets"
LEVELS: dict[str, type[Error] | type[Warning] | type[Info]] = {"E": Error, "W": Warning, "I": Info}

#: id (``aws_websockets.W030``) -> its template, filled as the topic modules are imported.
REGISTRY: dict[str, "Template"] = {}

Text = str | Mapping[str, str] | None


class Template:
    """One check id: its level, message and hint, with ``{placeholders}`` for ``str.format``."""

    def __init__(self, code: str, msg: Text, hint: Text = None) -> None:
        self.code = code
        self.id = f"{NAMESPACE}.{code}"
        self.level = LEVELS[code[0]]
        if self.id in REGISTRY:  # one definition per id: a number is never reused
            raise ValueError(f"{self.id} is defined twice")
        self.msg, self.hint = msg, hint
        self.module = sys._getframe(1).f_globals.get("__name__", "")  # the topic module that defines it
        REGISTRY[self.id] = self

    @staticmethod
    def _pick(text: Text, variant: str | None) -> str | None:
        if text is None or isinstance(text, str):
            return text
        return text[variant or "default"]

    def __call__(self, variant: str | None = None, **values: Any) -> CheckMessage:
        msg = self._pick(self.msg, variant)
        hint = self._pick(self.hint, variant)
        return self.level(
            msg.format(**values) if msg else "",
            hint=hint.format(**values) if hint else None,
            id=self.id,
        )

    def __repr__(self) -> str:
        return f"<Template {self.id}>"
