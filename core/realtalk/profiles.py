"""Where to connect and how: connection profiles, backoff, and secrets kept out of URLs.

Plain data, no sockets (``connection.py`` opens them): a :class:`ConnectionProfile` says
where to connect and how to authenticate (OpenAI, Azure OpenAI, or any compatible URL such
as the realtalk emulator); :class:`Backoff` spaces retries with full jitter. The API key is
only ever placed in a request header, and credentials written into a URL (``user:pass@``,
query values such as ``api-key``, ``token``, ``sig``) are shown as ``***``
(:func:`redact_url`, :attr:`ConnectionProfile.display_url`).
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import (
    parse_qsl,
    quote,
    quote_plus,
    unquote,
    unquote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

from realtalk.exceptions import AuthenticationFailed, ConnectionFailed
from realtalk.protocol.vocab import Dialect

__all__ = [
    "AZURE_PREVIEW_API_VERSION",
    "OPENAI_URL",
    "Backoff",
    "ConnectionProfile",
    "is_loopback_host",
    "redact_url",
    "url_secrets",
]

OPENAI_URL = "wss://api.openai.com/v1/realtime"
AZURE_PREVIEW_API_VERSION = "2025-04-01-preview"
"""``api-version`` used for Azure's preview (beta-protocol) endpoint."""


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- backoff ------------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Exponential backoff with full jitter (delay drawn uniformly from ``[0, cap]``).

    Args:
        initial: Cap of the first delay, in seconds.
        max: Largest cap, in seconds.
        factor: Growth of the cap per attempt.
        jitter: Full jitter if True; the cap itself if False.
        rng: Random source; pass ``random.Random(seed)`` for deterministic tests.
    """

    initial: float = 0.5
    max: float = 8.0
    factor: float = 2.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def cap(self, attempt: int) -> float:
        """The largest delay before retry number ``attempt`` (0-based)."""
        return float(min(self.max, self.initial * self.factor ** max(0, attempt)))

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based), in seconds."""
        cap = self.cap(attempt)
        return self.rng.uniform(0.0, cap) if self.jitter else cap

    def delays(self) -> Iterator[float]:
        """An endless iterator of delays for attempts 0, 1, 2, ..."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1


# -- secrets in URLs ----------------------------------------------------------------------------

_SECRET_PARAMS = frozenset({
    "key", "apikey", "token", "auth", "authorization", "sig", "signature", "secret",
    "password", "passwd", "pass", "pwd", "code", "credential", "credentials", "jwt",
    "bearer", "session", "sas",
})
_SECRET_SUFFIXES = ("_key", "_token", "_secret", "_sig", "_signature", "_password",
                    "_credential", "_jwt")


def _is_secret_param(name: str) -> bool:
    norm = unquote_plus(name).strip().lower().replace("-", "_")
    return norm in _SECRET_PARAMS or norm.endswith(_SECRET_SUFFIXES)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials written into ``url``, in every form they may appear in a message.

    That is the ``user:pass`` userinfo and its password, and the values of query parameters
    named like secrets (``api-key``, ``api_key``, ``key``, ``token``, ``access_token``,
    ``sig``, ``signature``, ``secret``, ``password``, anything ending in ``_key``,
    ``_token``, ``_secret``...), each raw, decoded and re-encoded. Longest first, so that
    replacing them in order never leaves part of one behind.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and userinfo:
        found.add(userinfo)
        _, colon, password = userinfo.partition(":")
        if colon and password:
            found.update((password, unquote(password)))
    for pair in parts.query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and _is_secret_param(name):
            plain = unquote_plus(value)
            found.update((value, plain, quote_plus(plain), quote(plain, safe="")))
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def redact_url(url: str) -> str:
    """``url`` with userinfo shown as ``***@`` and secret query values as ``***``.

    Other parts are kept as written. Works on any string: one that does not parse as a URL
    is returned unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, eq, value = pair.partition("=")
        pairs.append(f"{name}=***" if eq and value and _is_secret_param(name) else pair)
    query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# -- profiles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionProfile:
    """Where to connect and how to authenticate. Build one with a constructor below.

    Attributes:
        kind: ``"openai"``, ``"azure"`` or ``"url"``.
        ws_url: The full WebSocket URL including the query (never contains :attr:`api_key`;
            it may hold credentials the user wrote into it: show :attr:`display_url`).
        model: The model (or Azure deployment) requested, when known.
        beta: Opt-in legacy beta protocol (sends ``OpenAI-Beta: realtime=v1``).
        api_key: The secret; excluded from ``repr`` and comparisons.
        auth: ``"bearer"`` (``Authorization: Bearer``), ``"api-key"`` (Azure header) or
            ``"none"``.
        key_env: The environment variable the key comes from, for error messages.
    """

    kind: Literal["openai", "azure", "url"]
    ws_url: str
    model: str | None = None
    beta: bool = False
    api_key: str | None = field(default=None, repr=False, compare=False)
    auth: Literal["bearer", "api-key", "none"] = "bearer"
    key_env: str | None = None

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def openai(
        cls, model: str, api_key: str | None = None, *, beta: bool = False
    ) -> ConnectionProfile:
        """OpenAI: ``wss://api.openai.com/v1/realtime?model=<model>``, Bearer auth.

        Args:
            model: The Realtime model, e.g. ``gpt-realtime-2.1``.
            api_key: The key; defaults to ``$OPENAI_API_KEY``.
            beta: Speak the legacy beta protocol (OpenAI rejects it since May 2026).

        Raises:
            AuthenticationFailed: No key given and ``OPENAI_API_KEY`` is not set.
        """
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if not key:
            raise AuthenticationFailed(
                "no OpenAI API key: set OPENAI_API_KEY, or use --emulator (no key needed)"
            )
        return cls(
            kind="openai",
            ws_url=_with_query(OPENAI_URL, {"model": model}),
            model=model,
            beta=beta,
            api_key=key,
            auth="bearer",
            key_env="OPENAI_API_KEY",
        )

    @classmethod
    def azure(
        cls,
        deployment: str,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        beta: bool = False,
    ) -> ConnectionProfile:
        """Azure OpenAI GA: ``wss://<resource>/openai/v1/realtime?model=<deployment>``.

        With ``beta=True`` the preview endpoint is used instead
        (``/openai/realtime?api-version=...&deployment=...``), plus the beta header.

        Args:
            deployment: The Azure deployment name of the realtime model.
            endpoint: ``https://<resource>.openai.azure.com``; defaults to
                ``$AZURE_OPENAI_ENDPOINT``.
            api_key: Defaults to ``$AZURE_OPENAI_API_KEY``; sent as the ``api-key`` header.
            beta: Use the preview (beta) protocol.

        Raises:
            ConnectionFailed: No endpoint given and ``AZURE_OPENAI_ENDPOINT`` is not set.
            AuthenticationFailed: No key given and ``AZURE_OPENAI_API_KEY`` is not set.
        """
        base = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or ""
        if not base:
            raise ConnectionFailed(
                "no Azure endpoint: set AZURE_OPENAI_ENDPOINT to https://<resource>.openai.azure.com"
            )
        key = api_key or os.environ.get("AZURE_OPENAI_API_KEY") or None
        if not key:
            raise AuthenticationFailed("no Azure OpenAI API key: set AZURE_OPENAI_API_KEY")
        parts = urlsplit(base if "://" in base else "https://" + base)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/")
        for suffix in ("/openai/v1/realtime", "/openai/v1", "/openai/realtime", "/openai"):
            if path.endswith(suffix):
                path = path[: -len(suffix)]
                break
        if beta:
            path += "/openai/realtime"
            query = {"api-version": AZURE_PREVIEW_API_VERSION, "deployment": deployment}
        else:
            path += "/openai/v1/realtime"
            query = {"model": deployment}
        url = urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))
        return cls(
            kind="azure",
            ws_url=url,
            model=deployment,
            beta=beta,
            api_key=key,
            auth="api-key",
            key_env="AZURE_OPENAI_API_KEY",
        )

    @classmethod
    def url(
        cls,
        url: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        beta: bool = False,
    ) -> ConnectionProfile:
        """Any Realtime-compatible server (the realtalk emulator, a proxy, a gateway).

        Args:
            url: ``ws://`` or ``wss://`` URL (``http(s)`` is converted). A ``model`` query
                parameter is added when ``model`` is given and the URL has none.
            api_key: Sent as ``Authorization: Bearer`` when given; nothing otherwise.
            model: The model to request.
            beta: Speak the legacy beta protocol.

        Raises:
            ConnectionFailed: The URL is not a WebSocket URL.
        """
        parts = urlsplit(url)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        if scheme not in ("ws", "wss") or not parts.netloc:
            shown = redact_url(url)
            for secret in url_secrets(url):
                shown = shown.replace(secret, "***")
            raise ConnectionFailed(
                f"not a WebSocket URL: {shown!r}; expected ws://host:port/path or wss://..."
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if model and "model" not in query:
            query["model"] = model
        ws_url = urlunsplit((scheme, parts.netloc, parts.path or "/", urlencode(query), ""))
        return cls(
            kind="url",
            ws_url=ws_url,
            model=query.get("model") or model,
            beta=beta,
            api_key=api_key or None,
            auth="bearer" if api_key else "none",
        )

    # -- derived --------------------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        """The protocol dialect: ``"beta"`` for beta profiles, else ``"ga"``."""
        return "beta" if self.beta else "ga"

    @property
    def display_url(self) -> str:
        """The URL for messages and logs: no key, userinfo as ``***@``, secret query values
        (``api-key``, ``token``, ``sig``...) as ``***``."""
        return self.redact(redact_url(self.ws_url))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret string of this profile (the key, credentials in the URL), for
        scrubbing logs and records (e.g. ``Recorder(..., secrets=profile.secrets)``)."""
        key = (self.api_key,) if self.api_key and len(self.api_key) >= 4 else ()
        return key + url_secrets(self.ws_url)

    def __repr__(self) -> str:
        return (
            f"ConnectionProfile(kind={self.kind!r}, url={self.display_url!r},"
            f" model={self.model!r}, beta={self.beta!r}, auth={self.auth!r})"
        )

    def headers(self) -> dict[str, str]:
        """The request headers for the upgrade. Contains the secret: never log it."""
        headers: dict[str, str] = {}
        if self.api_key and self.auth == "bearer":
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self.api_key and self.auth == "api-key":
            headers["api-key"] = self.api_key
        if self.beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        return headers

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret of the profile replaced by ``***``.

        The API key, and the credentials in the URL wherever they appear: the URL's
        userinfo becomes ``***@``, secret query values (raw or percent-encoded) ``***``.
        """
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "***")
        if "@" in self.ws_url or "=" in self.ws_url:
            userinfo = self.ws_url.partition("://")[2].partition("/")[0].rpartition("@")[0]
            if userinfo:
                text = text.replace(userinfo + "@", "***@")
            for secret in url_secrets(self.ws_url):
                text = text.replace(secret, "***")
        return text


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
