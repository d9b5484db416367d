"""Access tokens for XOAUTH2 logins, behind one small interface so every protocol client takes
any provider: a static token for tests and service tokens, msal or google-auth ones later."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from connectors.errors import AuthError


class TokenProvider(Protocol):
    def token(self, username: str) -> str:
        """A currently valid access token for `username`; raises AuthError when none can be had."""
        ...


@dataclass(frozen=True)
class EnvironmentToken:
    """A bearer token read from an environment variable at each login, so a token rotated by an
    outside agent is picked up without a restart."""

    variable: str

    def token(self, username: str) -> str:
        value = os.environ.get(self.variable, "")
        if not value:
            raise AuthError(f"environment variable {self.variable} (the XOAUTH2 token for {username}) is not set")
        return value
