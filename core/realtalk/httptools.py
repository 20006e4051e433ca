"""HTTP tools: a tool whose ``http:`` section (in a tools YAML file) says which request to
send, instead of a Python ``handler:``.

The rules (docs/http-tools.md describes them for users):

- A template is a string in which ``{arg}`` is replaced by the model's argument ``arg``
  and ``${NAME}`` / ``${NAME:-default}`` by an environment variable (:mod:`realtalk.envrefs`).
  Only the template's own text is read for ``${...}``: an argument that holds ``${HOME}``
  stays that text, so a model cannot read the environment.
- In ``url``, an argument is percent-escaped whole (``/``, ``?``, ``#``, spaces, unicode),
  so it stays one path segment or one query value; an argument used in ``url`` must be
  required. ``query``, ``headers`` and ``form`` entries whose template names an argument
  the model left out are omitted. In ``json``, a string that is exactly ``"{arg}"`` becomes
  the argument with its JSON type; an absent one drops its key (or list item).
- The whole request (connect, headers, body, redirects) has one deadline, ``timeout_s``.
  Redirects are followed (at most :data:`MAX_REDIRECTS`) only while they stay on the
  first URL's origin (scheme, host, port): the request carries secrets, so a redirect to
  another origin is not followed, and becomes an error output naming the new host.
- The body is read up to ``max_response_bytes``; a larger one is not read further.
- Every outcome is a string for the model: ``returns`` picks the whole JSON, one value
  by a path (``current.temperature_2m``, ``$.hourly.time[0]``), or the text (capped);
  a non-2xx status, a timeout, a connection failure, a non-JSON or oversize body is a
  short JSON error (``{"error": "HTTP 404 Not Found", "status": 404, "body": "..."}``).
- Each call opens its own client (nothing outlives a call), but every client of the
  process shares one verifying SSL context: building one loads the CA bundle, about
  30 ms of CPU, which would otherwise be paid on every call.
- Every output is passed through :func:`realtalk.envrefs.redact` with the values the
  request read from the environment, so a server echoing a key back cannot leak it; the
  ``httpx2`` log records of the request are redacted the same way.

Parsing (:func:`parse_spec`), building a request (:func:`build_request`) and turning a
response into an output (:func:`response_output`) are plain functions of values; only
:class:`HttpCall` does I/O, with httpx2 (imported when a call is made).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from . import envrefs
from .exceptions import ConfigError, ToolDefinitionError
from .tools import MIN_MAX_OUTPUT_CHARS, Tool, ToolFailed, cap_output
from .waits import within
from .yamlfile import did_you_mean

if TYPE_CHECKING:
    import ssl

    import httpx2

__all__ = [
    "HttpCall", "HttpRequest", "HttpSpec", "Returns", "SpecProblem", "Template", "UnsetEnv", "as_http_tool",
    "build_request", "http_handler", "http_spec", "parse_spec", "response_output", "unset_env",
]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_TEXT_CHARS = 4000
MAX_REDIRECTS = 5
EXCERPT_CHARS = 300  # of an error's body, for the model
_KEYS = ("method", "url", "query", "headers", "json", "form", "timeout_s", "returns", "max_response_bytes")
# ${NAME...} and $${ are the environment's; {name} is an argument.
_PIECE = re.compile(r"\$\$\{|\$\{[^}]*\}|\{(?P<arg>[A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PATH_STEP = re.compile(r"\.?(?P<key>[^.\[\]]+)|\[(?P<index>-?\d+)\]")
_SECRETS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("realtalk_http_secrets", default=())


class SpecProblem(ValueError):
    """What is wrong with an ``http:`` section, and where in it (keys from ``http``)."""

    def __init__(self, message: str, path: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _Absent(Exception):
    """A template names an argument the model did not give."""


# --- templates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A string with ``{arg}`` and ``${NAME}`` references, split into its pieces.

    Attributes:
        text: As written.
        pieces: Literal text (which may hold ``${...}``) and, as ``("arg", name)``, the
            argument references, in order.
    """

    text: str
    pieces: tuple[str | tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """Split ``text`` into literal pieces and argument references."""
        pieces: list[str | tuple[str, str]] = []
        last = 0
        for match in _PIECE.finditer(text):
            if match["arg"] is None:
                continue
            if match.start() > last:
                pieces.append(text[last:match.start()])
            pieces.append(("arg", match["arg"]))
            last = match.end()
        if last < len(text):
            pieces.append(text[last:])
        return cls(text, tuple(pieces))

    @property
    def arguments(self) -> list[str]:
        """The argument names it refers to."""
        return [p[1] for p in self.pieces if isinstance(p, tuple)]

    @property
    def whole_argument(self) -> str | None:
        """The argument's name when the template is exactly ``{arg}``, else None."""
        return self.pieces[0][1] if len(self.pieces) == 1 and isinstance(self.pieces[0], tuple) else None

    def render(self, arguments: Mapping[str, Any], environ: Mapping[str, str] | None,
               secrets: list[str], escape: bool = False) -> str:
        """The text with its references replaced; the environment values used are added
        to ``secrets``.

        Raises:
            envrefs.MissingEnv: A variable without a default is unset.
            _Absent: An argument it names is not in ``arguments``.
        """
        out = []
        for piece in self.pieces:
            if isinstance(piece, tuple):
                if piece[1] not in arguments or arguments[piece[1]] is None:
                    raise _Absent(piece[1])
                value = _as_text(arguments[piece[1]])
                out.append(quote(value, safe="") if escape else value)
            else:
                expanded = envrefs.expand(piece, environ)
                secrets.extend(expanded.secrets)
                out.append(expanded.value)
        return "".join(out)


def _as_text(value: Any) -> str:
    """An argument as text: strings as they are, everything else as JSON (``true``, ``3``)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- the spec ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Returns:
    """What a 2xx answer becomes: ``json`` (the whole body), ``path`` (one value of it) or
    ``text`` (the body as text, at most ``max_chars``)."""

    kind: Literal["json", "path", "text"] = "json"
    path: tuple[str | int, ...] = ()
    path_text: str = ""
    max_chars: int = DEFAULT_TEXT_CHARS


@dataclass(frozen=True)
class HttpSpec:
    """A checked ``http:`` section.

    Attributes:
        method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
        url: The URL template.
        query: Query parameters (name to template), added to the URL's own.
        headers: Header name to template.
        json_body: The JSON body template (strings in it are templates), or None.
        form: Form fields (name to template), or None.
        timeout_s: The deadline of the whole request, redirects and body included.
        returns: What a 2xx answer becomes.
        max_response_bytes: The most of a body read.
        env: ``(NAME, path)`` of every ``${NAME}`` without a default, path from ``http``.
        file: The tools file, when it came from one.
        lines: Line of each env reference in ``file`` (same order as ``env``).
    """

    method: str
    url: Template
    query: tuple[tuple[str, Template], ...] = ()
    headers: tuple[tuple[str, Template], ...] = ()
    json_body: Any = None
    form: tuple[tuple[str, Template], ...] | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    returns: Returns = field(default_factory=Returns)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    env: tuple[tuple[str, tuple[object, ...]], ...] = ()
    file: str | None = None
    lines: tuple[int | None, ...] = ()

    @property
    def summary(self) -> str:
        """``GET https://api.example.com/v1/{city}``: the templates, never a value."""
        return f"{self.method} {self.url.text}"


def parse_spec(value: object, parameters: Mapping[str, Any]) -> HttpSpec:
    """Check an ``http:`` section against the tool's argument schema and build its spec.

    Raises:
        SpecProblem: One line saying what is wrong, and the path of the key.
    """
    if not isinstance(value, Mapping):
        raise SpecProblem("http must be a mapping with at least url: (see docs/http-tools.md)")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise SpecProblem(f"unknown key {unknown[0]!r} in http{did_you_mean(unknown[0], _KEYS)};"
                          f" it takes {', '.join(_KEYS)}", (unknown[0],))
    if "url" not in value:
        raise SpecProblem("http needs url:")
    properties = parameters.get("properties")
    declared = list(properties) if isinstance(properties, Mapping) else []
    required = parameters.get("required")
    required = list(required) if isinstance(required, list) else []
    env: list[tuple[str, tuple[object, ...]]] = []

    def template(text: object, path: tuple[object, ...]) -> Template:
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise SpecProblem(f"{_dotted(path)} must be a string, got {text!r}", path)
        text = str(text)
        problem = envrefs.reference_problem(text)
        if problem is not None:
            raise SpecProblem(f"{_dotted(path)}: {problem}", path)
        env.extend((name, path) for name in envrefs.names_without_default(text))
        parsed = Template.parse(text)
        for name in parsed.arguments:
            if name not in declared:
                raise SpecProblem(f"{_dotted(path)} refers to {{{name}}}, which is not a parameter of the tool"
                                  f"{did_you_mean(name, declared)}; parameters: {', '.join(declared) or 'none'}",
                                  path)
        return parsed

    def templates(key: str) -> tuple[tuple[str, Template], ...]:
        entries = value.get(key, {})
        if not isinstance(entries, Mapping):
            raise SpecProblem(f"http.{key} must be a mapping of names to templates", (key,))
        for name in entries:
            if key == "headers" and not _HEADER_NAME.match(str(name)):
                raise SpecProblem(f"http.headers: {name!r} is not a header name (letters, digits, - and"
                                  " !#$%&'*+.^_`|~)", (key, name))
        return tuple((str(k), template(v, (key, k))) for k, v in entries.items())

    method = value.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise SpecProblem(f"http.method must be one of {', '.join(METHODS)}, got {method!r}", ("method",))
    method = method.upper()
    url = template(value["url"], ("url",))
    _check_url(url)
    optional = [name for name in url.arguments if name not in required]
    if optional:
        raise SpecProblem(f"http.url refers to {{{optional[0]}}}, which is not required; a URL cannot leave"
                          " it out (make it required, or put it in query:)", ("url",))
    if "json" in value and "form" in value:
        raise SpecProblem("http takes json: or form:, not both", ("form",))
    has_body = "json" in value or "form" in value
    if has_body and method == "GET":
        raise SpecProblem("a GET request has no body: use query:, or method: POST", ("json" if "json" in value else "form",))
    json_body = _json_template(value["json"], ("json",), template) if "json" in value else None
    return HttpSpec(
        method=method,
        url=url,
        query=templates("query"),
        headers=templates("headers"),
        json_body=json_body,
        form=templates("form") if "form" in value else None,
        timeout_s=_positive(value.get("timeout_s", DEFAULT_TIMEOUT_S), "timeout_s", float),
        returns=_returns(value.get("returns", "json")),
        max_response_bytes=int(_positive(value.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
                                          "max_response_bytes", int)),
        env=tuple(env),
    )


def _dotted(path: tuple[object, ...]) -> str:
    return "http" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _check_url(url: Template) -> None:
    """A URL whose scheme and host can be known before running is http(s) with a host."""
    probe = "".join(p if isinstance(p, str) else "x" for p in url.pieces)
    try:
        expanded = envrefs.expand(probe, {}).value  # defaults only: unset names are not known yet
    except envrefs.MissingEnv:
        return
    parts = urlsplit(expanded)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecProblem(f"http.url must start with http:// or https:// and name a host, got {url.text!r}", ("url",))


def _positive(value: object, key: str, kind: type[float | int]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or \
            (kind is int and not isinstance(value, int)):
        noun = "integer" if kind is int else "number"
        raise SpecProblem(f"http.{key} must be a positive {noun}, got {value!r}", (key,))
    return float(value)


def _json_template(value: Any, path: tuple[object, ...], template: Any) -> Any:
    """The ``json:`` body with every string turned into a Template (checked)."""
    if isinstance(value, str):
        return template(value, path)
    if isinstance(value, Mapping):
        return {str(k): _json_template(v, (*path, k), template) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_template(v, (*path, i), template) for i, v in enumerate(value)]
    return value


def _returns(value: object) -> Returns:
    if value == "json":
        return Returns("json")
    if value == "text":
        return Returns("text")
    if isinstance(value, Mapping) and len(value) == 1 and "path" in value:
        text = value["path"]
        if not isinstance(text, str):
            raise SpecProblem(f"http.returns.path must be a string like current.temperature_2m, got {text!r}",
                              ("returns", "path"))
        return Returns("path", parse_path(text), text)
    if isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("text"), Mapping):
        options = value["text"]
        chars = options.get("max_chars")
        if set(options) != {"max_chars"} or isinstance(chars, bool) or not isinstance(chars, int) \
                or chars < MIN_MAX_OUTPUT_CHARS:
            raise SpecProblem(f"http.returns.text takes max_chars: an integer of at least {MIN_MAX_OUTPUT_CHARS}",
                              ("returns", "text"))
        return Returns("text", max_chars=chars)
    raise SpecProblem(f"http.returns must be json, text, {{path: EXPR}} or {{text: {{max_chars: N}}}},"
                      f" got {value!r}", ("returns",))


def parse_path(text: str) -> tuple[str | int, ...]:
    """``$.hourly.time[0]`` (the ``$`` is optional) as ``("hourly", "time", 0)``.

    Raises:
        SpecProblem: The text is not such a path.
    """
    rest = text.removeprefix("$")
    steps: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _PATH_STEP.match(rest, position)
        if match is None or (match["key"] is not None and position > 0 and rest[position] != "."):
            raise SpecProblem(f"http.returns.path {text!r} is not a path like current.temperature_2m or"
                              " hourly.time[0]", ("returns", "path"))
        steps.append(match["key"] if match["key"] is not None else int(match["index"]))
        position = match.end()
    if not steps:
        raise SpecProblem("http.returns.path is empty; write a path like current.temperature_2m", ("returns", "path"))
    return tuple(steps)


# --- building a request ------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One request, with its references replaced, and the secrets that went into it.

    Never log or show it: ``url`` and ``headers`` may hold secrets.
    """

    method: str
    url: str
    params: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    json_body: Any = None
    has_json: bool = False
    form: tuple[tuple[str, str], ...] | None = None
    secrets: tuple[str, ...] = ()


def build_request(spec: HttpSpec, arguments: Mapping[str, Any],
                  environ: Mapping[str, str] | None = None) -> HttpRequest:
    """The request for one call with ``arguments`` (environment: ``environ`` or ``os.environ``).

    Raises:
        envrefs.MissingEnv: A variable the spec needs is unset.
        ValueError: The URL, once expanded, is not an http(s) URL with a host.
    """
    secrets: list[str] = []
    try:
        url = spec.url.render(arguments, environ, secrets, escape=True)
    except _Absent as absent:  # parse_spec requires URL arguments; a caller may skip validation
        raise ValueError(f"the argument {absent} is missing") from None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(envrefs.redact("the tool's URL is not an http(s) URL with a host: check the"
                                        f" environment variables in {spec.url.text}", secrets))

    def present(entries: Iterable[tuple[str, Template]]) -> tuple[tuple[str, str], ...]:
        out = []
        for name, template in entries:
            try:
                out.append((name, template.render(arguments, environ, secrets)))
            except _Absent:
                continue
        return tuple(out)

    params, headers = present(spec.query), present(spec.headers)
    form = present(spec.form) if spec.form is not None else None
    has_json = spec.json_body is not None
    body = _render_json(spec.json_body, arguments, environ, secrets) if has_json else None
    return HttpRequest(spec.method, url, params, headers, body, has_json, form, tuple(dict.fromkeys(secrets)))


_DROP = object()


def _render_json(value: Any, arguments: Mapping[str, Any], environ: Mapping[str, str] | None,
                 secrets: list[str]) -> Any:
    if isinstance(value, Template):
        whole = value.whole_argument
        if whole is not None:
            return arguments.get(whole, _DROP)
        try:
            return value.render(arguments, environ, secrets)
        except _Absent:
            return _DROP
    if isinstance(value, dict):
        rendered = {k: _render_json(v, arguments, environ, secrets) for k, v in value.items()}
        return {k: v for k, v in rendered.items() if v is not _DROP}
    if isinstance(value, list):
        items = [_render_json(v, arguments, environ, secrets) for v in value]
        return [v for v in items if v is not _DROP]
    return value


# --- the answer --------------------------------------------------------------------------


class ErrorJson(str):
    """An error output (a ``str``): :class:`HttpCall` fails the call with it."""

    __slots__ = ()


def error_json(message: str, **details: Any) -> str:
    """``{"error": message, ...details}`` as the tool's output (an :class:`ErrorJson`)."""
    return ErrorJson(json.dumps({"error": message, **details}, ensure_ascii=False))


def excerpt(body: bytes) -> str:
    """The start of a body, for an error: whitespace collapsed, at most ``EXCERPT_CHARS``."""
    text = " ".join(body[:EXCERPT_CHARS * 4].decode("utf-8", errors="replace").split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 3] + "..."


def response_output(spec: HttpSpec, status: int, reason: str, content_type: str, body: bytes,
                    complete: bool = True) -> str:
    """The output for the model of one answer (not yet redacted: :class:`HttpCall` does it).

    Args:
        spec: The tool's spec (its ``returns``).
        status: The HTTP status.
        reason: Its reason phrase (``Not Found``).
        content_type: The ``Content-Type`` header, or ``""``.
        body: The body read (at most ``max_response_bytes``).
        complete: False when the body was longer than ``max_response_bytes``.
    """
    if not 200 <= status < 300:
        return error_json(f"HTTP {status} {reason}".strip(), status=status, body=excerpt(body))
    returns = spec.returns
    if returns.kind == "text":
        text = body.decode("utf-8", errors="replace")
        if complete:
            return cap_output(text, returns.max_chars)
        return json.dumps({"truncated": True, "output": text[:returns.max_chars], "note":
                           f"the response is larger than {spec.max_response_bytes} bytes; this is its beginning"},
                          ensure_ascii=False)
    if not complete:
        return error_json(f"the response is larger than {spec.max_response_bytes} bytes; it was not read"
                          " further (ask for less, e.g. fewer days or fields)", status=status)
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return error_json(f"the response is not JSON (Content-Type: {content_type or 'none'})", status=status,
                          body=excerpt(body))
    if returns.kind == "path":
        found, value = _follow(value, returns.path)
        if not found:
            return error_json(f"the response has no {returns.path_text}", status=status, **value)
    return json.dumps(value, ensure_ascii=False)


def _follow(value: Any, path: tuple[str | int, ...]) -> tuple[bool, Any]:
    """(True, the value at ``path``), or (False, details of where it stopped)."""
    for depth, step in enumerate(path):
        in_list = isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value)
        in_dict = isinstance(step, str) and isinstance(value, dict) and step in value
        if in_list or in_dict:
            value = value[step]
        else:
            where = "the top" if depth == 0 else "".join(f"[{s}]" if isinstance(s, int) else f".{s}"
                                                          for s in path[:depth]).lstrip(".")
            if isinstance(value, dict):
                return False, {"at": where, "keys": list(value)[:20]}
            if isinstance(value, list):
                return False, {"at": where, "items": len(value)}
            return False, {"at": where, "value_type": type(value).__name__}
    return True, value


# --- the call ----------------------------------------------------------------------------


class _Redact(logging.Filter):
    """Redacts the secrets of the HTTP tool call running in this context from httpx2's
    log records (they show the URL, which may carry a key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _SECRETS.get()
        if secrets:
            record.msg = envrefs.redact(record.getMessage(), secrets)
            record.args = ()
        return True


_filter_installed = False


def _install_log_filter() -> None:
    global _filter_installed
    if not _filter_installed:
        logging.getLogger("httpx2").addFilter(_Redact())
        _filter_installed = True


_ssl_context: ssl.SSLContext | None = None


def _shared_ssl_context(httpx2: Any) -> ssl.SSLContext:
    """The process's SSL context for HTTP tools, built at the first call (httpx2's default:
    certificates verified, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured as set then)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx2.create_ssl_context()
    return _ssl_context


class HttpCall:
    """The handler of an HTTP tool: :meth:`call` sends the request for one call's arguments.

    Attributes:
        spec: What to send and what to return.
    """

    def __init__(self, spec: HttpSpec) -> None:
        self.spec = spec

    async def call(self, **arguments: Any) -> str:
        """Send the request and return the output for the model (redacted).

        Raises:
            ToolFailed: Whatever went wrong (a status that is not 2xx, a timeout, a body
                that is not what ``returns`` expects, an unset variable), with the
                ``{"error": ...}`` output the model gets: the call's status is ``error``.
        """
        try:
            request = build_request(self.spec, arguments)
        except envrefs.MissingEnv as missing:
            raise ToolFailed(error_json(f"{missing}; this tool cannot call its server until it is set")) from None
        except ValueError as problem:
            raise ToolFailed(error_json(str(problem))) from None
        _install_log_filter()
        token = _SECRETS.set(request.secrets)
        try:
            output = await self._send(request)
        except Exception as exc:  # noqa: BLE001 - a header value httpx2 refuses, a bug: still an output
            output = error_json(f"the request could not be sent: {type(exc).__name__}: {exc}")
        finally:
            _SECRETS.reset(token)
        failed = isinstance(output, ErrorJson)
        output = envrefs.redact(output, request.secrets)
        if failed:
            raise ToolFailed(output)
        return output

    async def _send(self, request: HttpRequest) -> str:
        import httpx2

        parts = urlsplit(request.url)  # the host and port only: user:password@ stays out of messages
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        try:
            return await within(self._exchange(httpx2, request), self.spec.timeout_s)
        except asyncio.TimeoutError:
            return error_json(f"no complete answer from {host} within {self.spec.timeout_s:g} s"
                              " (the tool's http.timeout_s)")
        except httpx2.ConnectError as exc:
            return error_json(f"could not connect to {host}: {exc or type(exc).__name__}")
        except httpx2.HTTPError as exc:
            return error_json(f"the request to {host} failed: {type(exc).__name__}: {exc}")

    async def _exchange(self, httpx2: Any, request: HttpRequest) -> str:
        spec = self.spec
        async with httpx2.AsyncClient(follow_redirects=False, timeout=spec.timeout_s,
                                      verify=_shared_ssl_context(httpx2)) as client:
            outgoing: httpx2.Request = client.build_request(
                request.method, request.url, params=list(request.params) or None, headers=list(request.headers),
                json=request.json_body if request.has_json else None,
                data=dict(request.form) if request.form is not None else None)
            origin = _origin(outgoing.url)
            for hop in range(MAX_REDIRECTS + 1):
                response = await client.send(outgoing, stream=True)
                try:
                    target = response.next_request
                    if target is None:
                        body, complete = await _read(response, spec.max_response_bytes,
                                                     whole=spec.returns.kind != "text")
                        return response_output(spec, response.status_code, response.reason_phrase,
                                               response.headers.get("content-type", ""), body, complete)
                    if _origin(target.url) != origin:
                        return error_json(
                            f"the server redirected to another origin ({target.url.scheme}://{target.url.netloc.decode()});"
                            " an HTTP tool only follows redirects on its own origin, since its request may carry"
                            " secrets", status=response.status_code)
                    if hop == MAX_REDIRECTS:
                        return error_json(f"more than {MAX_REDIRECTS} redirects", status=response.status_code)
                    outgoing = target
                finally:
                    await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover


def _origin(url: httpx2.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


async def _read(response: httpx2.Response, cap: int, *, whole: bool) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether that is all of it; nothing when only
    the ``whole`` body is of use and its ``Content-Length`` says it is larger."""
    length = response.headers.get("content-length", "")
    if whole and length.isdigit() and int(length) > cap:
        return b"", False
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], False
    return b"".join(chunks), True


# --- tools and their environment ---------------------------------------------------------


def http_spec(tool: Tool) -> HttpSpec | None:
    """The HTTP spec of an HTTP tool, or None for any other tool."""
    owner = getattr(tool.handler, "__self__", None)
    return owner.spec if isinstance(owner, HttpCall) else None


class UnsetEnv(ConfigError):
    """An HTTP tool an agent uses needs an environment variable that is not set: a warning
    for ``realtalk check``, an error for ``realtalk run`` (before connecting)."""


def unset_env(tools: Iterable[Tool], environ: Mapping[str, str] | None = None) -> list[UnsetEnv]:
    """One problem per tool and variable it needs (``${NAME}`` without a default) that is
    unset or empty in ``environ`` (default ``os.environ``), at its first use's file and line."""
    import os

    env = os.environ if environ is None else environ
    found: dict[tuple[str, str], UnsetEnv] = {}
    for tool in tools:
        spec = http_spec(tool)
        if spec is None:
            continue
        for (name, _path), line in zip(spec.env, spec.lines or (None,) * len(spec.env), strict=True):
            if not env.get(name) and (name, tool.name) not in found:
                found[(name, tool.name)] = UnsetEnv(
                    f"environment variable {name} is not set; HTTP tool {tool.name!r} needs it (set it, or write"
                    f" ${{{name}:-default}})", file=spec.file, line=line)
    return list(found.values())


def http_handler(name: str, http: Mapping[str, Any], parameters: Mapping[str, Any], *,
                 plugin: str) -> Callable[..., Any]:
    """The handler of an HTTP tool registered in Python (``register(..., http={...})``).

    Raises:
        ToolDefinitionError: The section is invalid (one line naming the tool).
    """
    try:
        return HttpCall(parse_spec(http, parameters)).call
    except SpecProblem as problem:
        raise ToolDefinitionError(f"tool {name!r}: {problem.message}", plugin=plugin) from None


def as_http_tool(tool: Tool) -> Tool:
    """``tool`` with ``handler_path`` showing its request's template (``realtalk tools``)."""
    from dataclasses import replace

    spec = http_spec(tool)
    return tool if spec is None else replace(tool, handler_path=f"http: {spec.summary}")


def with_location(spec: HttpSpec, file: str | Path, line_of: Any) -> HttpSpec:
    """``spec`` knowing its file and the line of each env reference (``line_of(path)``)."""
    from dataclasses import replace

    return replace(spec, file=str(file), lines=tuple(line_of(path) for _name, path in spec.env))
