"""Service-account credentials acting as one user (domain-wide delegation), and IMAP XOAUTH2 tokens
for Gmail made the same way. google-auth caches each token in its credentials and refreshes it
when it expires."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from connectors.errors import AuthError, TransientError
from connectors.google.settings import IMAP_SCOPE, GoogleApp


def service_account_info(app: GoogleApp) -> dict[str, Any]:
    """The JSON key, with `token_uri` replaced when the settings name another token endpoint."""
    if app.key_env:
        text = os.environ.get(app.key_env, "")
        if not text.strip():
            raise AuthError(f"key_env: environment variable {app.key_env} is not set")
        where = f"environment variable {app.key_env}"
    else:
        assert app.key_file is not None
        try:
            text = app.key_file.read_text(encoding="utf-8")
        except OSError as error:
            raise AuthError(f"key_file: cannot read {app.key_file} ({error.strerror or error})") from None
        where = str(app.key_file)
    try:
        info = json.loads(text)
    except ValueError:
        raise AuthError(f"{where} does not hold a service account JSON key") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise AuthError(f"{where} does not hold a service account JSON key")
    return info | ({"token_uri": app.token_uri} if app.token_uri else {})


def delegated(app: GoogleApp, scopes: list[str], user: str) -> service_account.Credentials:
    """Credentials acting as `user`; they fetch a token only when first used."""
    info = service_account_info(app)
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    except (ValueError, KeyError) as error:
        raise AuthError(f"the service account key cannot be used ({type(error).__name__})") from None
    return credentials.with_subject(user)


def refused(error: google.auth.exceptions.GoogleAuthError, client_id: str, scopes: list[str], user: str) -> Exception:
    """A token refusal as a connector error that tells the admin what to delegate."""
    if isinstance(error, google.auth.exceptions.TransportError):
        return TransientError(f"the Google token endpoint is unreachable ({type(error).__name__})")
    reason = str(error.args[0]) if error.args else type(error).__name__
    return AuthError(f"no token to act as {user}: {reason.split(';')[0][:300]}; in the Admin console, delegate these "
                     f"scopes domain-wide to client {client_id}: {', '.join(scopes)}")


class GmailImapTokens:
    """A token provider for IMAP XOAUTH2 against Gmail: the service account acting as each user."""

    def __init__(self, app: GoogleApp) -> None:
        self.app = app
        self._credentials: dict[str, service_account.Credentials] = {}
        self._lock = threading.Lock()

    def token(self, username: str) -> str:
        with self._lock:
            credentials = self._credentials.get(username) or delegated(self.app, [IMAP_SCOPE], username)
            self._credentials[username] = credentials
            if not credentials.valid:
                try:
                    credentials.refresh(google.auth.transport.requests.Request())
                except google.auth.exceptions.GoogleAuthError as error:
                    raise refused(error, str(service_account_info(self.app).get("client_id", "")), [IMAP_SCOPE],
                                  username) from None
            return str(credentials.token)
