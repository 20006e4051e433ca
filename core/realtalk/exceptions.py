"""Every error realtalk raises on purpose.

The hierarchy::

    RealtalkError                     anything realtalk raises on purpose
    ├── ConfigError                   a file the user wrote is wrong (agent, scenario, tools YAML)
    │   └── ScenarioError             an emulator scenario file is wrong
    ├── PluginError                   a plugin failed to import, register, or declare its tools
    │   └── ToolDefinitionError       a tool's name, description or schema is invalid, or taken
    ├── ConnectionFailed              the server could not be reached or refused us
    │   ├── AuthenticationFailed      bad or missing API key (close 3000): never retried
    │   └── ServerRejected            bad model, beta shape, other fatal close (4000): never retried
    ├── SessionError                  the server broke a protocol promise (e.g. dropped our update)
    │   └── ProtocolError             a server event the runtime cannot use (malformed, wrong types)
    └── AudioDeviceError              no usable microphone or speaker, or a device failed

Every message is one line that says what was wrong, where, and what to do; the CLI prints
``str(error)`` and exits non-zero without a traceback.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing (and pathlib) is most of `import realtalk`
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AudioDeviceError",
    "AuthenticationFailed",
    "ConfigError",
    "ConnectionFailed",
    "PluginError",
    "ProtocolError",
    "RealtalkError",
    "ScenarioError",
    "ServerRejected",
    "SessionError",
    "ToolDefinitionError",
]


class RealtalkError(Exception):
    """Base class of every error realtalk raises on purpose."""


class ConfigError(RealtalkError):
    """A user-written file is invalid.

    Attributes:
        message: What is wrong and, where possible, what to do about it.
        file: The file, when known.
        line: The 1-based line in ``file``, when known.
        json_path: Where in the document, as ``$.tools[1].name``, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        json_path: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.json_path = json_path
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        path = f"{self.json_path}: " if self.json_path and self.json_path != "$" else ""
        return f"{where}{path}{self.message}"


class ScenarioError(ConfigError):
    """An emulator scenario file is invalid."""


class PluginError(RealtalkError):
    """A plugin failed to load, register, or declare its tools.

    Attributes:
        plugin: The distribution name and version, as ``realtalk-clock 0.1.0``, when known.
    """

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        self.plugin = plugin
        self.message = message
        super().__init__(f"plugin {plugin}: {message}" if plugin else message)


class ToolDefinitionError(PluginError):
    """A tool's name, description, schema or handler is invalid, or its name is taken."""


class ConnectionFailed(RealtalkError):
    """The Realtime server could not be reached, or it refused the connection."""


class AuthenticationFailed(ConnectionFailed):
    """The server rejected our credentials (close 3000). Retrying would not help."""


class ServerRejected(ConnectionFailed):
    """The server refused the session for a reason retrying cannot fix (close 4000)."""


class SessionError(RealtalkError):
    """The server broke a protocol promise, such as silently dropping our session.update."""


class ProtocolError(SessionError):
    """A server event the runtime cannot use: malformed, wrongly typed, or out of order.

    Usually a warning (the event is skipped); raised only when the session cannot go on.
    """


class AudioDeviceError(RealtalkError):
    """No usable audio device, or a device failed while open."""
