"""App-only tokens from msal for one tenant, for Graph and for IMAP XOAUTH2 against Exchange Online.

msal caches each token and asks the token endpoint again only when it is about to expire. With
`token_cache_file` the cache also survives restarts, encrypted with the Fernet key held in the
environment variable `token_cache_key_env`: tokens are credentials, and nothing readable by
another local user may hold one.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization

from connectors.errors import AuthError, PermanentError, TransientError
from connectors.graph.settings import MicrosoftApp

log = logging.getLogger("custody.graph")
_TRANSIENT_TOKEN_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def http_session(app: MicrosoftApp) -> requests.Session:
    """A session that trusts `ca_file` even when REQUESTS_CA_BUNDLE is set (requests lets that
    variable override a session's own `verify`), while still going through the proxy the
    environment names."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(urllib.request.getproxies())
    session.verify = str(app.ca_file) if app.ca_file else True
    return session


class MsalTokens:
    """A token provider for one resource of one tenant; thread-safe, one msal app per instance."""

    def __init__(self, app: MicrosoftApp, scope: str, session: requests.Session | None = None) -> None:
        self.app = app
        self.scope = scope
        self._session = session or http_session(app)
        self._lock = threading.Lock()
        self._client: msal.ConfidentialClientApplication | None = None
        self._cache: EncryptedCache | None = None

    def token(self, username: str = "") -> str:
        """A valid access token; `username` is ignored, as an app-only token serves every mailbox."""
        with self._lock:
            try:
                result = self._app().acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as error:
                raise TransientError(f"{self.app.authority()}: token endpoint unreachable ({type(error).__name__})") from None
            except ValueError as error:
                raise PermanentError(f"{self.app.authority()}: not a usable authority ({error})") from None
            if self._cache is not None:
                self._cache.save()
        if "access_token" in result:
            return str(result["access_token"])
        raise refused(self.app, result)

    def _app(self) -> msal.ConfidentialClientApplication:
        if self._client is None:
            if self.app.token_cache_file:
                self._cache = EncryptedCache(self.app.token_cache_file, self.app.token_cache_key_env)
            self._client = msal.ConfidentialClientApplication(
                self.app.client_id, client_credential=client_credential(self.app), authority=self.app.authority(),
                instance_discovery=False, http_client=self._session,
                token_cache=self._cache.cache if self._cache else None, timeout=self.app.timeout_seconds)
        return self._client


def refused(app: MicrosoftApp, result: dict[str, Any]) -> Exception:
    """The token endpoint's refusal as a connector error: the first line of its description names
    the AADSTS code an admin can look up, and never holds the secret."""
    code = str(result.get("error", "unknown_error"))
    described = str(result.get("error_description", "")).strip().splitlines()
    reason = f"{code}: {described[0]}" if described else code
    message = f"{app.authority()}: token for client {app.client_id} refused ({reason})"
    return TransientError(message) if code in _TRANSIENT_TOKEN_ERRORS else AuthError(message)


def client_credential(app: MicrosoftApp) -> str | dict[str, str]:
    """The client secret, or msal's certificate credential (private key and SHA-1 thumbprint)."""
    if app.client_secret_env or app.client_secret_file:
        return _secret_text(app.client_secret_env, app.client_secret_file, "client_secret")
    pem = _secret_text(app.certificate_env, app.certificate_file, "certificate")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError as error:
        raise AuthError(f"certificate: needs a PEM holding the private key and the certificate ({error})") from None
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"private_key": key_pem, "thumbprint": certificate.fingerprint(hashes.SHA1()).hex(),
            "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode()}


def _secret_text(variable: str, path: Path | None, what: str) -> str:
    if variable:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise AuthError(f"{what}_env: environment variable {variable} is not set")
        return value
    assert path is not None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise AuthError(f"{what}_file: cannot read {path} ({error.strerror or error})") from None


class EncryptedCache:
    """msal's serialisable token cache, kept on disk only encrypted and only readable by its owner."""

    def __init__(self, path: Path, key_variable: str) -> None:
        self.path = path
        self.cache = msal.SerializableTokenCache()
        key = os.environ.get(key_variable, "")
        if not key:
            raise AuthError(f"token_cache_key_env: environment variable {key_variable} is not set")
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise AuthError(f"token_cache_key_env: {key_variable} does not hold a Fernet key "
                            "(32 url-safe base64-encoded bytes)") from None
        self._load()

    def _load(self) -> None:
        try:
            self.cache.deserialize(self._fernet.decrypt(self.path.read_bytes()).decode())
        except FileNotFoundError:
            return
        except (InvalidToken, ValueError, OSError):
            log.warning("token cache %s cannot be read with the configured key; starting with an empty one", self.path)

    def save(self) -> None:
        if not self.cache.has_state_changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(self._fernet.encrypt(self.cache.serialize().encode()))
        os.replace(partial, self.path)
        self.cache.has_state_changed = False
