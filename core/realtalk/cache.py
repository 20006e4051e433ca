"""A small on-disk cache of facts that cost a start-up dear and change only with their
inputs: "this tool schema is a valid JSON Schema", "this agent document passes the agent
schema" (each needs jsonschema, the slowest import of ``realtalk check``) and the
``realtalk`` entry points of the installed distributions (``importlib.metadata``).

Only good verdicts are stored: a schema or a document that fails is checked again every
time, so the cache can skip work but never hide an error. Each verdict is keyed by a
SHA-256 of everything it depends on (:func:`verdict_key`): the exact input as canonical
JSON, the installed versions of the checking libraries, realtalk's version and the
size and modification time of the realtalk module that decides.

Where: ``$REALTALK_CACHE_DIR``, else ``$XDG_CACHE_HOME/realtalk``, else
``~/.cache/realtalk``; ``REALTALK_NO_CACHE=1`` turns it off. The directory is created
private (0700) and used only when it is a real directory owned by the user and writable
by nobody else; files are written to a temporary name and renamed (atomic). A missing,
corrupt, foreign or unwritable cache is ignored silently: it costs the time it would
have saved, never a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from typing import Any

from . import __version__

__all__ = ["JSONSCHEMA", "cache_dir", "canonical_json", "known_good", "read_json", "remember_good",
           "verdict_key", "write_json"]

DIR_ENV = "REALTALK_CACHE_DIR"
OFF_ENV = "REALTALK_NO_CACHE"
_FORMAT = 1
_MAX_VERDICTS = 4096  # distinct good inputs kept; past it the oldest go (a bound, not a tuning)
_VERDICTS = "verdicts.json"

JSONSCHEMA = ("jsonschema", "jsonschema_specifications", "referencing")
"""The import packages whose versions decide a JSON Schema verdict (the meta-schemas live
in jsonschema_specifications, ``$ref`` resolution in referencing)."""

_good: dict[str, None] | None = None  # the verdict file, read once per process


def cache_dir() -> str | None:
    """The cache directory, created if needed; None when off or unsafe to use."""
    if os.environ.get(OFF_ENV, "") not in ("", "0"):
        return None
    path = os.environ.get(DIR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "realtalk")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
        return None  # a symlink, or others may write there: its verdicts are not ours
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return None
    return path


def read_json(name: str) -> Any:
    """The JSON in the cache file ``name``, or None (no cache, no file, not JSON)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        with open(os.path.join(folder, name), "rb") as file:
            return json.loads(file.read())
    except (OSError, ValueError):
        return None


def write_json(name: str, data: Any) -> None:
    """Replace the cache file ``name`` with ``data`` atomically; any failure is ignored."""
    folder = cache_dir()
    if folder is None:
        return
    target = os.path.join(folder, name)
    temporary = f"{target}.{os.getpid()}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, separators=(",", ":"))
        os.replace(temporary, target)
    except (OSError, ValueError, TypeError):
        try:
            os.unlink(temporary)
        except OSError:
            pass


def canonical_json(value: object) -> str | None:
    """``value`` as canonical JSON (sorted keys, no spaces), or None when it is not plain
    JSON data: only str keys (``json.dumps`` would turn ``1`` into ``"1"``), no NaN or
    infinity, no dates, sets or other objects."""
    if not _plain(value):
        return None
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError):
        return None


def _plain(value: object, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def verdict_key(kind: str, value: object, *, decided_by: tuple[str, ...],
                libraries: tuple[str, ...] = JSONSCHEMA) -> str | None:
    """The key of a verdict on ``value`` (None when it is not plain JSON data, which is then
    not cached): what was checked (``kind``, ``value`` as canonical JSON), by which realtalk
    code (realtalk's version, and the size and modification time of each file in
    ``decided_by``: a module, a packaged schema) and with which installed ``libraries``."""
    material = canonical_json(value)
    if material is None:
        return None
    parts = [kind, __version__, *map(_file_stamp, decided_by), *map(_library_stamp, libraries), material]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def known_good(key: str) -> bool:
    """True when the verdict ``key`` was stored as good."""
    return key in _verdicts()


def remember_good(key: str) -> None:
    """Store the verdict ``key`` as good (the oldest go past a bound)."""
    good = _verdicts()
    if key in good:
        return
    good[key] = None
    while len(good) > _MAX_VERDICTS:
        del good[next(iter(good))]
    write_json(_VERDICTS, {"format": _FORMAT, "good": list(good)})


def _verdicts() -> dict[str, None]:
    global _good
    if _good is None:
        data = read_json(_VERDICTS)
        keys = data.get("good") if isinstance(data, dict) and data.get("format") == _FORMAT else None
        _good = dict.fromkeys(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else {}
    return _good


def _file_stamp(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return f"{path}:?"
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"


_libraries: dict[str, str] = {}


def _library_stamp(name: str) -> str:
    """The installed version of the import package ``name``, read without importing it:
    the name of its ``.dist-info`` directory beside it, or else its ``__init__.py``'s size
    and modification time."""
    if name not in _libraries:
        _libraries[name] = f"{name}:{_find_library(name)}"
    return _libraries[name]


def _find_library(name: str) -> str:
    for folder in sys.path:
        package = os.path.join(folder or ".", name)
        init = os.path.join(package, "__init__.py")
        if not os.path.isfile(init):
            continue
        # NAME-VERSION.dist-info, the version starting with a digit (jsonschema-4.23.0, not
        # jsonschema_specifications-2025.4.1)
        prefix = name.replace("_", "-").lower() + "-"
        try:
            found = [entry for entry in os.listdir(folder or ".") if entry.endswith(".dist-info")
                     and entry.replace("_", "-").lower().startswith(prefix) and entry[len(prefix):][:1].isdigit()]
        except OSError:
            found = []
        # The version tells which code runs only when one distribution is there to say it.
        return found[0] if len(found) == 1 else _file_stamp(init)
    return "?"
