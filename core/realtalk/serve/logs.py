"""Log lines of ``realtalk serve``: one JSON object per line, with the session id.

Every record becomes ``{"ts", "level", "logger", "message"}``, plus ``session_id`` when it
was logged inside a session (the connection handler sets :data:`session_id`, a context
variable that the session's own tasks inherit), plus ``error`` when it carries an
exception. ``--log-format text`` prints the same fields for a person to read.

Secrets never get out: every line is scrubbed of the configured tokens and keys before
it is written, whatever code logged them, and of any ``token=`` value in a URL (a page
opened as ``/?token=...`` with a minted token, which no configuration lists).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO

__all__ = ["JsonFormatter", "TextFormatter", "install", "session_id"]

session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("realtalk_session_id", default=None)
"""The id of the session the current task serves, or None."""


_URL_TOKEN = re.compile(r"([?&;]token=)[^&;#\s\"']+", re.IGNORECASE)


class _Scrubbing(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so that a secret holding another one is hidden whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _URL_TOKEN.sub(r"\1***", text)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        sid = getattr(record, "session_id", None) or session_id.get()
        if sid:
            data["session_id"] = sid
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            data["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {key: self.scrub(value) for key, value in data.items()}


class JsonFormatter(_Scrubbing):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False)


class TextFormatter(_Scrubbing):
    """``TS LEVEL [SESSION] LOGGER: MESSAGE`` for a person."""

    def format(self, record: logging.LogRecord) -> str:
        data = self.fields(record)
        sid = f" [{data['session_id']}]" if "session_id" in data else ""
        error = f" ({data['error']})" if "error" in data else ""
        line = f"{data['ts']} {data['level']}{sid} {data['logger']}: {data['message']}{error}"
        return " ".join(line.split("\n"))


def install(log_format: str = "json", *, secrets: Iterable[str] = (), level: int = logging.INFO,
            stream: TextIO | None = None) -> Callable[[], None]:
    """Send realtalk's and uvicorn's log records to ``stream`` (stderr) in ``log_format``.

    Replaces the root logger's console handlers while installed (the CLI's one-line
    console handler would print each record twice); a ``--log-file`` handler stays.
    Returns what undoes it.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    saved_handlers = [h for h in root.handlers if type(h) is logging.StreamHandler]
    saved = {name: logging.getLogger(name).level for name in ("realtalk", "uvicorn", "uvicorn.access")}
    for old in saved_handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    for name in saved:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        for old in saved_handlers:
            root.addHandler(old)
        for name, old_level in saved.items():
            logging.getLogger(name).setLevel(old_level)

    return undo
