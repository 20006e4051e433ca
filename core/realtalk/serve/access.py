"""Who may start a session: tokens, origins and capacity, decided without any I/O.

:class:`AccessPolicy` takes plain values (the client's address, the token it presented,
the page's ``Origin``, the ``Host`` it asked for, what kind of caller it is, whether the
server drains) and either admits the caller, counting the slot until
:meth:`AccessPolicy.release`, or raises :class:`Refused` with an HTTP status, a code and
one line for a human. The clock is injected, so minted tokens expire in tests without
sleeping.

Minted tokens (``POST /token``) are ``rt1.EXPIRY.NONCE.SIGNATURE``: the signature is
HMAC-SHA256 of ``rt1.EXPIRY.NONCE`` with the token secret, checked in constant time, so
the server keeps no list of them and every worker process accepts every token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import normal_origin

__all__ = ["AccessPolicy", "Admission", "Refused", "TokenMinter", "bearer"]

_PREFIX = "rt1"


class Refused(Exception):
    """A caller was not admitted.

    Attributes:
        status: HTTP status: 401 bad or missing token, 403 origin, 404 unknown agent,
            429 capacity (process or client), 503 draining.
        code: ``unauthorized``, ``forbidden_origin``, ``unknown_agent``, ``capacity``,
            ``client_capacity`` or ``draining``.
        reason: One line for a human; never holds a secret.
    """

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason

    def as_message(self) -> dict[str, object]:
        """The ``refused`` message of the browser protocol."""
        return {"type": "refused", "status": self.status, "code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class Admission:
    """A granted slot, released when the session ends.

    Attributes:
        session_id: The session's id (logs, records, the ``ready`` message).
        client: The client's address.
        kind: ``browser`` or ``phone``.
    """

    session_id: str
    client: str
    kind: str


def _sign(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenMinter:
    """Short-lived tokens signed with a secret.

    Args:
        secret: The HMAC key.
        ttl_s: Lifetime of a minted token.
        clock: Seconds since the epoch (``time.time``).
    """

    def __init__(self, secret: str, ttl_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self.clock = clock

    def mint(self) -> tuple[str, int]:
        """A new token and when it expires (whole seconds since the epoch)."""
        expires = int(self.clock() + self.ttl_s)
        body = f"{_PREFIX}.{expires}.{secrets.token_urlsafe(12)}"
        return f"{body}.{_sign(self._secret, body)}", expires

    def check(self, token: str) -> str | None:
        """None when ``token`` is a valid unexpired token; otherwise why not (one line)."""
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX or not parts[1].isdigit():
            return "invalid token"
        if not hmac.compare_digest(signature.encode(), _sign(self._secret, body).encode()):
            return "invalid token"
        if int(parts[1]) <= self.clock():
            return "the token has expired; get a new one"
        return None


class AccessPolicy:
    """Admits or refuses callers, and counts the sessions admitted per process and client.

    Args:
        tokens: Static tokens (any of them admits).
        minter: Checks minted tokens, when a token secret is configured.
        allow_origins: Page origins allowed besides the request's own host; ``*``: any.
        max_sessions: Concurrent sessions in this process.
        max_per_client: Concurrent sessions per client address.

    Browsers must present a token when tokens or a minter are configured. Phones are
    authenticated by their transport (Twilio's signature), so only capacity and drain
    apply to them. A missing ``Origin`` is a client that is no browser (a script); an
    ``Origin`` is checked.
    """

    def __init__(self, *, tokens: Iterable[str] = (), minter: TokenMinter | None = None,
                 allow_origins: Iterable[str] = (), max_sessions: int = 100, max_per_client: int = 8) -> None:
        self._tokens = [t.encode() for t in tokens]
        self.minter = minter
        origins = set(allow_origins)
        self.any_origin = "*" in origins
        self.origins = {o for o in (normal_origin(x) for x in origins - {"*"}) if o}
        self.max_sessions = max_sessions
        self.max_per_client = max_per_client
        self.active: dict[str, Admission] = {}
        self.per_client: dict[str, int] = {}

    @property
    def needs_token(self) -> bool:
        return bool(self._tokens) or self.minter is not None

    def check(self, *, client: str, token: str | None, origin: str | None, host: str | None, kind: str,
              draining: bool = False) -> None:
        """Raise :class:`Refused` if this caller may not start a session now."""
        if draining:
            raise Refused(503, "draining", "the server is shutting down; try again in a moment")
        if kind == "browser":
            if origin is not None and not self.origin_allowed(origin, host):
                raise Refused(403, "forbidden_origin",
                              f"pages from {_shown_origin(origin)} may not use this server"
                              " (its operator can allow them with --allow-origin)")
            if self.needs_token:
                self._check_token(token)
        if len(self.active) >= self.max_sessions:
            raise Refused(429, "capacity", f"the server is busy ({self.max_sessions} sessions); try again later")
        if self.per_client.get(client, 0) >= self.max_per_client:
            raise Refused(429, "client_capacity",
                          f"too many sessions from your address ({self.max_per_client} at most); close one first")

    def admit(self, *, client: str, token: str | None, origin: str | None, host: str | None, kind: str,
              draining: bool = False) -> Admission:
        """Check the caller and count its slot.

        Raises:
            Refused: The caller may not start a session now.
        """
        self.check(client=client, token=token, origin=origin, host=host, kind=kind, draining=draining)
        admission = Admission(uuid.uuid4().hex[:16], client, kind)
        self.active[admission.session_id] = admission
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return admission

    def release(self, admission: Admission) -> None:
        """The session ended: free its slot (idempotent)."""
        if self.active.pop(admission.session_id, None) is None:
            return
        left = self.per_client.get(admission.client, 0) - 1
        if left > 0:
            self.per_client[admission.client] = left
        else:
            self.per_client.pop(admission.client, None)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page from ``origin`` may connect to a server reached as ``host``."""
        if self.any_origin:
            return True
        normal = normal_origin(origin)
        if normal is None:
            return False
        if normal in self.origins:
            return True
        return host is not None and _same_host(normal, host)

    def mint_allowed(self, authorization: str | None, mint_key: str | None) -> bool:
        """Whether an ``Authorization`` header carries the mint key (constant time)."""
        if mint_key is None or self.minter is None:
            return False
        presented = bearer(authorization) or ""
        return hmac.compare_digest(presented.encode(), mint_key.encode())

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise Refused(401, "unauthorized", "this server needs a token; none was given")
        given = token.encode()
        matched = False
        for known in self._tokens:  # every one compared: no timing hint of which is close
            matched |= hmac.compare_digest(given, known)
        if matched:
            return
        why = self.minter.check(token) if self.minter is not None else "invalid token"
        if why is not None:
            raise Refused(401, "unauthorized", why)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _same_host(origin: str, host: str) -> bool:
    """Whether the normalised ``origin`` names the ``Host`` header's host and port."""
    o = urlsplit(origin)
    try:
        h = urlsplit("//" + host.strip())
        h_port = h.port
        o_port = o.port
    except ValueError:
        return False
    default = 443 if o.scheme == "https" else 80
    return (o.hostname or "") == (h.hostname or "").lower() and (o_port or default) == (h_port or default)


def _shown_origin(origin: str) -> str:
    """The origin for a message: printable, one line, at most 100 characters."""
    clean = "".join(c if c.isprintable() else "?" for c in origin)
    return repr(clean[:100])
