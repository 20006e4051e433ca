"""Images for the conversation: a file read, checked and turned into an ``input_image`` part.

The Realtime API takes PNG and JPEG images as data URLs inside a user message::

    {"type": "input_image", "image_url": "data:image/png;base64,...", "detail": "auto"}

:func:`image_part` builds that part from a file, with a clear one-line error for a file
that is missing, not a PNG or JPEG, or too large to send in one WebSocket message.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

__all__ = ["DETAILS", "MAX_IMAGE_BYTES", "image_part"]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""The largest image file sent (10 MiB): base64 makes it ~13.4 MiB, under the 16 MiB a
server accepts in one message."""

DETAILS = ("auto", "low", "high")
"""The ``detail`` levels the API takes (``auto`` means ``high``)."""

_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def image_part(path: str | Path, detail: str = "auto") -> dict[str, Any]:
    """Read an image file and return the ``input_image`` content part for it.

    Args:
        path: A PNG or JPEG file (recognised by its first bytes, not its name).
        detail: ``auto``, ``low`` or ``high``.

    Raises:
        ConfigError: The file is missing or unreadable, not PNG/JPEG, empty, larger than
            :data:`MAX_IMAGE_BYTES`, or ``detail`` is not one of :data:`DETAILS`.
    """
    if detail not in DETAILS:
        raise ConfigError(f"image detail {detail!r} is not one of {', '.join(DETAILS)}")
    file = Path(path)
    try:
        size = file.stat().st_size
        if not file.is_file():
            raise ConfigError(f"image {file}: not a file")
        if size > MAX_IMAGE_BYTES:
            raise ConfigError(
                f"image {file}: {size / 1024 / 1024:.1f} MiB is too large to send (at most"
                f" {MAX_IMAGE_BYTES // 1024 // 1024} MiB); scale it down first")
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"image {file}: cannot read it ({exc.strerror or exc})") from None
    mime = next((m for magic, m in _MAGIC.items() if data.startswith(magic)), None)
    if mime is None:
        kind = "an empty file" if not data else "neither PNG nor JPEG"
        raise ConfigError(f"image {file}: {kind}; the Realtime API takes PNG and JPEG images")
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "input_image", "image_url": url, "detail": detail}
