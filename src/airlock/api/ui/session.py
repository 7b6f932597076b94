"""Dashboard sessions: the operator's API token kept in an encrypted cookie, never in a URL.

The cookie (:data:`COOKIE`) is a Fernet token (AES-CBC + HMAC-SHA256) over ``{"t": token, "c":
csrf}``, keyed by a key derived from the server's own Owner token, so only this server (or one
sharing its ``AIRLOCK_HOME``) can read it, and it expires after :data:`LIFETIME` seconds. It is
``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and ``Secure`` when the request came over https.
Every request re-checks the token with the :class:`~airlock.api.tokens.TokenStore`, so a revoked
token signs its sessions out at once, and the role is exactly the token's.

CSRF: the session carries a random token that the pages hold in a ``<meta>`` element; every
request that is not GET/HEAD and is authenticated by the cookie must send it back in the
:data:`CSRF_HEADER` header (the API's routes) or the ``csrf`` form field (sign-out), else it is
refused with 403 before anything else. The sign-in form is protected the same way with a
pre-session cookie (double submit). SameSite=Strict already keeps other sites' requests from
carrying the cookie; the token also covers browsers that ignore SameSite.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

from airlock.api.envelope import ArmError
from airlock.api.tokens import Caller, TokenStore
from airlock.errors import AccessDenied

COOKIE = "airlock_session"
SIGNIN_COOKIE = "airlock_signin"  # the sign-in form's double-submit CSRF value
CSRF_HEADER = "X-CSRF-Token"
LIFETIME = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    caller: Caller
    token: str
    csrf: str


class Sessions:
    """Opens and writes session cookies. ``secret`` is the server's Owner token (its key's source)."""

    def __init__(self, secret: str) -> None:
        key = hmac.new(secret.encode(), b"airlock-ui-session-v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def open(self, request: Request) -> Session | None:
        """The request's session, or None (no cookie, tampered, expired, or its token no longer valid)."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = json.loads(self._fernet.decrypt(raw.encode(), ttl=LIFETIME))
            token, csrf = str(data["t"]), str(data["c"])
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
        store: TokenStore = request.app.state.tokens
        caller = store.authenticate(token)
        return None if caller is None else Session(caller, token, csrf)

    def sign_in(self, response: Response, request: Request, token: str) -> None:
        """Set the session cookie for ``token`` (already authenticated by the caller)."""
        value = self._fernet.encrypt(json.dumps({"t": token, "c": secrets.token_urlsafe(24)}).encode()).decode()
        _set(response, request, COOKIE, value, LIFETIME)
        response.delete_cookie(SIGNIN_COOKIE, path="/ui")

    @staticmethod
    def sign_out(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/")


def _set(response: Response, request: Request, name: str, value: str, max_age: int, path: str = "/") -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def signin_value(request: Request) -> str:
    """The sign-in form's CSRF value: the pre-session cookie's, or a new one."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)


def remember_signin(request: Request, response: Response, value: str) -> None:
    """Set the pre-session cookie holding the sign-in form's CSRF value."""
    _set(response, request, SIGNIN_COOKIE, value, 3600, path="/ui")


def check_signin_csrf(request: Request, sent: str) -> bool:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, sent)


def check_csrf(session: Session, sent: str | None) -> None:
    """Raises the 403 ArmError: ``sent`` is not the session's CSRF token."""
    if not sent or not hmac.compare_digest(session.csrf, sent):
        raise ArmError(
            403,
            "CsrfTokenInvalid",
            f"the dashboard session's request has no valid {CSRF_HEADER} header; reload the page",
            error_class=AccessDenied,
        )


def cookie_caller(request: Request) -> Caller | None:
    """The caller of a request that carries a dashboard session instead of a bearer token (the
    dashboard's script calling the JSON API), or None. Raises the 403 ArmError: a state-changing
    request without the session's CSRF token."""
    sessions: Sessions | None = getattr(request.app.state, "ui_sessions", None)
    session = sessions.open(request) if sessions is not None else None
    if session is None:
        return None
    if request.method not in SAFE_METHODS:
        check_csrf(session, request.headers.get(CSRF_HEADER))
    return session.caller
