"""A private Dovecot on a loopback port, for tests and benchmarks that need a real IMAP server.

Everything (config, passwd-file users, Maildir storage, rawlogs, TLS key) lives in one
directory, so several servers can run side by side and nothing touches /etc/dovecot.
When started as root, Dovecot drops mail processes to `nobody`, which must reach that directory.

Tests share one plain-text server per session, each through a tenant with users of its own
(`dovecot`); a test that stops, restarts or reconfigures a server has one of its own.
"""

from __future__ import annotations

import copy
import datetime
import grp
import ipaddress
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from imapclient import IMAPClient

from tests.servers.tokeninfo import TokenInfoServer

DOVECOT = Path("/usr/sbin/dovecot")
SPECIAL_USE = {"Sent": "\\Sent", "Archive": "\\Archive", "Drafts": "\\Drafts", "Junk": "\\Junk", "Trash": "\\Trash"}

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
auth_failure_delay = 0
first_valid_uid = 1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
mail_location = maildir:{root}/mail/%u
rawlog_dir = {root}/rawlog/%u
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


class DovecotServer:
    """One Dovecot instance rooted in `root`; start, stop and restart keep its ports and mail.

    With `rawlog`, Dovecot records each user's sessions (it does so only when that user's rawlog
    directory exists), so tests can check the commands a client sent; benchmarks turn it off.
    Users are named as added, unless this is a `tenant` of a shared server: then `login(name)` tells
    what they log in as."""

    def __init__(
        self, root: Path, tls: bool = False, special_use: bool = True, rawlog: bool = True,
        oauth2_tokeninfo_url: str = "",
    ) -> None:
        self.root = root
        self.oauth2_tokeninfo_url = oauth2_tokeninfo_url
        self.rawlog = rawlog
        self.tls = tls
        self.special_use = special_use
        self.port = free_port()
        self.tls_port = free_port()
        self.ca_file = root / "ca.pem"
        self.users: dict[str, str] = {}
        self.tag = ""
        self.shared = False
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
        for name in ("run", "state", "mail", "home", "rawlog", "users"):
            (root / name).mkdir(parents=True, exist_ok=True)
        if tls:
            write_self_signed_certificate(root / "cert.pem", root / "key.pem")
            shutil.copy(root / "cert.pem", self.ca_file)
        self._write_config()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def tenant(self, tag: str) -> DovecotServer:
        """This running server as one test sees it: no users yet, and each one it adds logs in as
        `name_tag`, so tests sharing the server never see each other's mailboxes. A tenant cannot
        stop or restart the server the others use."""
        tenant = copy.copy(self)
        tenant.users, tenant.tag, tenant.shared = {}, tag, True
        return tenant

    def login(self, name: str) -> str:
        """The IMAP login of the user added as `name`."""
        return f"{name}_{self.tag}" if self.tag else name

    def add_user(self, name: str, password: str) -> None:
        """One passwd-file per user: Dovecot opens a new file on the first login, so this works while running
        (it rechecks a changed file at most once a second, too late for a test adding users quickly)."""
        self.users[name] = password
        login = self.login(name)
        folders = [self.root / "mail" / login, self.root / "home" / login]
        for folder in folders + ([self.root / "rawlog" / login] if self.rawlog else []):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, self._owner.pw_uid, self._owner.pw_gid)
        (self.root / "users" / login).write_text(f"{login}:{{PLAIN}}{password}::::::\n")

    def remove_users(self) -> None:
        """Delete every user added here with their mail, so a shared server does not grow all session."""
        for login in map(self.login, self.users):
            (self.root / "users" / login).unlink(missing_ok=True)
            for folder in ("mail", "home", "rawlog"):
                shutil.rmtree(self.root / folder / login, ignore_errors=True)
        self.users = {}

    def start(self) -> None:
        self._refuse_when_shared()
        if self.running:
            return
        self._process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not _accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._refuse_when_shared()
        if not self.running:
            return
        assert self._process is not None
        group = os.getpgid(self._process.pid)
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        _end_group(group)
        while _accepts(self.port):
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, user: str) -> IMAPClient:
        """A logged-in plain-text client, for filling and changing mailboxes from tests."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(self.login(user), self.users[user])
        return client

    def append(self, user: str, folder: str, messages: Iterable[bytes]) -> None:
        """APPEND in groups of MULTIAPPEND, creating the folder when it is missing."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            group: list[bytes] = []
            for message in messages:
                group.append(message)
                if len(group) == 200:
                    client.multiappend(folder, group)
                    group = []
            if group:
                client.multiappend(folder, group)

    def recreate_folder(self, user: str, folder: str, messages: Iterable[bytes]) -> None:
        """Delete and create the folder again: the server gives it a new UIDVALIDITY."""
        with self.client(user) as client:
            client.delete_folder(folder)
            client.create_folder(folder)
        self.append(user, folder, messages)

    def commands(self, user: str) -> list[str]:
        """Every command line clients sent for `user` after login, oldest session first, without timestamps."""
        lines: list[str] = []
        for path in sorted((self.root / "rawlog" / self.login(user)).glob("*.in")):
            lines += [line.split(" ", 1)[-1] for line in path.read_text(errors="replace").splitlines()]
        return lines

    def clear_commands(self, user: str) -> None:
        for path in (self.root / "rawlog" / self.login(user)).glob("*"):
            path.unlink()

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "dovecot.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        ended = self._process is not None and self._process.poll() is not None and self._process.stderr
        stderr = self._process.stderr.read().decode(errors="replace") if ended else ""
        return "\n".join((text + stderr).splitlines()[-lines:])

    def _refuse_when_shared(self) -> None:
        if self.shared:
            raise RuntimeError("this Dovecot is shared by the session's tests: one that stops or restarts "
                               "its server takes the dovecot_private fixture")

    def _write_config(self) -> None:
        ssl_files = ""
        if self.tls:
            ssl_files = f"ssl_cert = <{self.root}/cert.pem\nssl_key = <{self.root}/key.pem"
        mailboxes = ""
        if self.special_use:
            mailboxes = "".join(
                f"  mailbox {name} {{\n    special_use = {flag}\n  }}\n" for name, flag in SPECIAL_USE.items()
            )
        internal = self._owner if os.geteuid() != 0 else pwd.getpwnam("dovecot")
        login = self._owner if os.geteuid() != 0 else pwd.getpwnam("dovenull")
        (self.root / "dovecot.conf").write_text(_CONFIG.format(
            root=self.root, ssl="required" if self.tls else "no", ssl_files=ssl_files,
            internal_user=internal.pw_name, internal_group=_group_name(internal.pw_gid),
            login_user=login.pw_name, uid=self._owner.pw_uid, gid=self._owner.pw_gid,
            port=self.port, tls_port=self.tls_port, mailboxes=mailboxes, **self._oauth2_settings(),
        ))
        for path in (self.root, self.root / "mail", self.root / "home", self.root / "rawlog"):
            path.chmod(0o755)


    def _oauth2_settings(self) -> dict[str, str]:
        """XOAUTH2 checks each bearer token at `oauth2_tokeninfo_url` + token, which answers
        {"username": ...} for a valid one, as Google's tokeninfo and OIDC userinfo endpoints do."""
        if not self.oauth2_tokeninfo_url:
            return {"oauth2_mechanisms": "", "oauth2_passdb": ""}
        settings = self.root / "oauth2.conf.ext"
        settings.write_text(f"tokeninfo_url = {self.oauth2_tokeninfo_url}\nusername_attribute = username\n")
        passdb = f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {settings}\n}}\n"
        return {"oauth2_mechanisms": " xoauth2 oauthbearer", "oauth2_passdb": passdb}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_self_signed_certificate(cert_path: Path, key_path: Path) -> None:
    """A certificate for 127.0.0.1 and localhost that clients trust through `ca_file`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


def _end_group(group: int) -> None:
    """Dovecot's imap processes outlive a stopped master and would keep serving open sessions;
    they share the master's own process group, so end that group."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def server_root() -> Path:
    """A fresh directory outside pytest's private (0700) tmp tree, so the mail user can enter it."""
    return Path(tempfile.mkdtemp(prefix="custody-dovecot-"))


def require_dovecot() -> None:
    if not DOVECOT.exists():
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")


_TENANTS = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot_shared() -> Iterator[DovecotServer]:
    """The plain-text Dovecot the session's tests share, each as a tenant: one start instead of one per test."""
    yield from _serve(tls=False)


@pytest.fixture
def dovecot(dovecot_shared: DovecotServer) -> Iterator[DovecotServer]:
    """A running plain-text Dovecot on loopback with no users of this test yet; other tests use it too,
    under other logins, so it cannot be stopped (see `dovecot_private`)."""
    tenant = dovecot_shared.tenant(f"t{next(_TENANTS)}")
    yield tenant
    tenant.remove_users()


@pytest.fixture
def dovecot_private() -> Iterator[DovecotServer]:
    """A running plain-text Dovecot of this test alone, with no users yet: it may stop and restart it."""
    yield from _serve(tls=False)


@pytest.fixture
def dovecot_tls() -> Iterator[DovecotServer]:
    """A running Dovecot that requires TLS, with a self-signed certificate in `ca_file`."""
    yield from _serve(tls=True)


@pytest.fixture
def dovecot_without_special_use() -> Iterator[DovecotServer]:
    """A running plain-text Dovecot that marks no folder \\Sent, \\Junk..., like many older servers."""
    yield from _serve(tls=False, special_use=False)


@pytest.fixture
def dovecot_oauth2() -> Iterator[tuple[DovecotServer, TokenInfoServer]]:
    """A running plain-text Dovecot that also accepts XOAUTH2 tokens listed in the TokenInfoServer."""
    tokeninfo = TokenInfoServer()
    tokeninfo.start()
    try:
        for server in _serve(tls=False, oauth2_tokeninfo_url=tokeninfo.url):
            yield server, tokeninfo
    finally:
        tokeninfo.stop()


def _serve(tls: bool, special_use: bool = True, oauth2_tokeninfo_url: str = "") -> Iterator[DovecotServer]:
    require_dovecot()
    root = server_root()
    server = DovecotServer(root, tls=tls, special_use=special_use, oauth2_tokeninfo_url=oauth2_tokeninfo_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
