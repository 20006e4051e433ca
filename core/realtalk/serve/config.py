"""What ``realtalk serve`` was asked to do: one :class:`ServeConfig`, checked before anything
listens.

Secrets never come from the command line (other users can read it in ``ps``): the serve
command reads them from the environment (:func:`secrets_from_env`), and ``repr`` of a
config never shows them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from ..pricing import Price

__all__ = [
    "MINT_KEY_VARIABLE",
    "TOKENS_VARIABLE",
    "TOKEN_SECRET_VARIABLE",
    "TOKEN_VARIABLE",
    "TWILIO_TOKEN_VARIABLE",
    "ServeConfig",
    "normal_origin",
    "secrets_from_env",
]

TOKEN_VARIABLE = "REALTALK_SERVE_TOKEN"
TOKENS_VARIABLE = "REALTALK_SERVE_TOKENS"
TOKEN_SECRET_VARIABLE = "REALTALK_SERVE_TOKEN_SECRET"
MINT_KEY_VARIABLE = "REALTALK_SERVE_MINT_KEY"
TWILIO_TOKEN_VARIABLE = "REALTALK_TWILIO_AUTH_TOKEN"
MIN_SECRET_CHARS = 16
"""Shortest token secret and mint key accepted: a short HMAC key can be guessed."""


@dataclass
class ServeConfig:
    """Everything ``realtalk serve`` runs with (the flags, and the secrets from the environment).

    Attributes:
        agents: The agents directory (or one agent file).
        agent: The default agent (``/ws`` without ``?agent=``); default: the only root agent,
            or the first one.
        host, port: Where to listen (port 0: any free port).
        emulator: Serve against a built-in emulator (one per server) instead of OpenAI.
        scenario: The emulator's scenario (default: ``AGENT.scenario.yaml`` beside the
            default agent).
        emulator_fast: Let the emulator send audio without real-time pacing (tests).
        emulator_url: A running emulator to use instead of starting one (``--workers``:
            the parent's).
        url, model, azure: Where to connect, as for ``realtalk run``.
        tokens: Static tokens a caller may present.
        token_secret: Signs short-lived tokens minted by ``POST /token``.
        mint_key: What ``POST /token`` requires as ``Authorization: Bearer``.
        token_ttl_s: Lifetime of a minted token.
        allow_origins: Page origins allowed besides the server's own (``*``: any).
        max_sessions: Concurrent sessions per process.
        max_per_client: Concurrent sessions per client address.
        max_session_s: Longest session; it then ends with ``closing`` ``max_session``.
        drain_s: On SIGTERM, how long sessions may go on before they are closed.
        approval_timeout_s: How long an approval waits for the page's answer.
        workers: Processes sharing the listening socket.
        record_dir: One JSONL record per session, named by its session id.
        log_format: ``json`` (one object per line) or ``text``.
        public_url: The server's public ``https://`` address (Twilio's stream URL).
        twilio_auth_token: Verifies Twilio's webhook signatures.
        prices: The price table for cost estimates (None: the built-in one;
            ``--prices FILE`` and ``REALTALK_PRICES`` load one with realtalk.pricing.load_prices).
    """

    agents: Path
    agent: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    emulator: bool = False
    scenario: Path | None = None
    emulator_fast: bool = False
    emulator_url: str | None = None
    url: str | None = None
    model: str | None = None
    azure: bool = False
    tokens: tuple[str, ...] = field(default=(), repr=False)
    token_secret: str | None = field(default=None, repr=False)
    mint_key: str | None = field(default=None, repr=False)
    token_ttl_s: float = 300.0
    allow_origins: tuple[str, ...] = ()
    max_sessions: int = 100
    max_per_client: int = 8
    max_session_s: float = 1800.0
    drain_s: float = 30.0
    approval_timeout_s: float = 60.0
    workers: int = 1
    record_dir: Path | None = None
    log_format: str = "json"
    public_url: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    prices: Mapping[str, Price | None] | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret of the config (scrubbed from logs)."""
        found = [*self.tokens, self.token_secret, self.mint_key, self.twilio_auth_token]
        return tuple(s for s in found if s)

    @property
    def needs_token(self) -> bool:
        """Whether browsers must present a token (static or minted ones are configured)."""
        return bool(self.tokens or self.token_secret)

    def check(self) -> None:
        """Refuse a config that cannot work, with one line naming the flag or variable.

        Raises:
            ConfigError: The first problem found.
        """
        for name, value, low in (("--max-sessions", self.max_sessions, 1), ("--max-per-client", self.max_per_client, 1),
                                 ("--workers", self.workers, 1)):
            if value < low:
                raise ConfigError(f"{name} must be at least {low}, not {value}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be a port number from 0 to 65535, not {self.port}")
        for name, seconds in (("--max-session-s", self.max_session_s), ("--drain-s", self.drain_s),
                              ("--approval-timeout-s", self.approval_timeout_s),
                              ("--token-ttl-s", self.token_ttl_s)):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ConfigError(f"{name} must be a number of seconds above 0, not {seconds}")
        if self.scenario is not None and not self.emulator:
            raise ConfigError("--scenario needs --emulator")
        if self.emulator and (self.url or self.azure):
            raise ConfigError("--emulator cannot be combined with --url or --azure")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"--log-format must be json or text, not {self.log_format!r}")
        for origin in self.allow_origins:
            if origin != "*" and normal_origin(origin) is None:
                raise ConfigError(f"--allow-origin: not an origin: {origin!r}; expected https://host[:port] or *")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"--public-url: not an http(s) URL: {self.public_url!r}")
        if self.token_secret is not None and len(self.token_secret) < MIN_SECRET_CHARS:
            raise ConfigError(f"{TOKEN_SECRET_VARIABLE} must be at least {MIN_SECRET_CHARS} characters")
        if self.mint_key is not None and len(self.mint_key) < MIN_SECRET_CHARS:
            raise ConfigError(f"{MINT_KEY_VARIABLE} must be at least {MIN_SECRET_CHARS} characters")
        if bool(self.token_secret) != bool(self.mint_key):
            raise ConfigError(f"minted tokens need both {TOKEN_SECRET_VARIABLE} and {MINT_KEY_VARIABLE}"
                              " (POST /token is only served with a mint key)")
        if any(not t.strip() or any(c.isspace() or c == "," for c in t) for t in self.tokens):
            raise ConfigError(f"{TOKENS_VARIABLE}: a token is empty or holds spaces or commas")
        if self.record_dir is not None:
            try:
                self.record_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--record-dir: cannot create {self.record_dir}: {exc.strerror or exc}") from None
            if not os.access(self.record_dir, os.W_OK | os.X_OK):
                raise ConfigError(f"--record-dir: cannot write in {self.record_dir}: permission denied")


def secrets_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The secret fields of a :class:`ServeConfig` from the environment.

    ``REALTALK_SERVE_TOKEN`` (one token) and ``REALTALK_SERVE_TOKENS`` (comma-separated)
    are both read; ``REALTALK_SERVE_TOKEN_SECRET``, ``REALTALK_SERVE_MINT_KEY`` and
    ``REALTALK_TWILIO_AUTH_TOKEN`` as they are. Empty variables count as unset.
    """
    env = os.environ if environ is None else environ
    tokens = [env.get(TOKEN_VARIABLE, ""), *env.get(TOKENS_VARIABLE, "").split(",")]
    return {
        "tokens": tuple(t.strip() for t in tokens if t.strip()),
        "token_secret": env.get(TOKEN_SECRET_VARIABLE) or None,
        "mint_key": env.get(MINT_KEY_VARIABLE) or None,
        "twilio_auth_token": env.get(TWILIO_TOKEN_VARIABLE) or None,
    }


def normal_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None when
    ``origin`` is not an http(s) origin (``null``, a path, no host)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or (parts.scheme, port) in (("http", 80), ("https", 443)):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"
