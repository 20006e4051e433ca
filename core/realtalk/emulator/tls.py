"""TLS for the emulator: a server context from a certificate and key file, or a clear error.

Clients such as the official Node SDK only connect to ``wss://``, so the emulator can serve
TLS (``realtalk emulator --tls-cert FILE --tls-key FILE``). Every way the two files can be
wrong (one without the other, missing, unreadable, not PEM, encrypted, not a pair) is a
:class:`~realtalk.exceptions.ConfigError` naming the file, raised before anything listens.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["server_context"]

_CERT_MARK = b"-----BEGIN CERTIFICATE-----"
_KEY_MARK = b"PRIVATE KEY-----"


def server_context(cert: str | Path | None, key: str | Path | None) -> ssl.SSLContext | None:
    """The TLS server context for ``cert`` and ``key`` (PEM files), or None when neither is given.

    Raises:
        ConfigError: Only one of the two is given; a file is missing or unreadable, is not
            a PEM certificate (or key), the key is encrypted, or the key does not belong to
            the certificate.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("certificate", "key") if key is None else ("key", "certificate")
        raise ConfigError(f"a TLS {given} was given without a TLS {missing}: give both, or neither")
    _check_pem(Path(cert), _CERT_MARK, "a PEM certificate (BEGIN CERTIFICATE)")
    _check_pem(Path(key), _KEY_MARK, "a PEM private key (BEGIN ... PRIVATE KEY)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_refuse_password(key))
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(
                f"the TLS key {key} does not belong to this certificate", file=cert
            ) from None
        raise ConfigError(f"cannot use this TLS certificate with key {key}: {exc}", file=cert) from None
    return context


def _check_pem(path: Path, mark: bytes, what: str) -> None:
    """Raise a ConfigError unless ``path`` can be read and holds ``mark``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read this TLS file: {exc.strerror or exc}", file=path) from None
    if mark not in data:
        raise ConfigError(f"not {what}", file=path)


def _refuse_password(key: str | Path) -> Callable[[], str]:
    """A password callback for an encrypted key: OpenSSL would prompt on the terminal."""

    def refuse() -> str:
        raise ConfigError(
            "the TLS key is encrypted; give an unencrypted one (openssl ... -nodes)", file=key
        )

    return refuse
