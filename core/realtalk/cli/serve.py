"""``realtalk serve``: serve agents to browsers and phones until SIGTERM or Ctrl-C.

``realtalk.cli`` wires the subcommand to :func:`add_arguments` and :func:`serve_command`.
This module imports no Starlette or uvicorn until the command runs: without the
``serve`` extra the command is one line (exit 2), and other commands never load them.

Shutdown: the first SIGTERM or Ctrl-C makes ``/readyz`` answer 503 and refuses new
sessions (4503), lets the sessions go on for up to ``--drain-s`` seconds, closes the rest
cleanly (``closing`` ``draining``) and exits 0. A second Ctrl-C exits at once (130).

``--workers N`` (N > 1): the listening socket is bound here and handed to N processes
(multiprocessing ``spawn``), each with its own uvicorn server and sessions; with
``--emulator`` one emulator runs here and every worker connects to it. Signals are
forwarded to the workers, which drain; the parent waits for them (bounded).

Secrets come from the environment only (``docs/serve.md``, "Access").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, RealtalkError, ScenarioError
from ..profiles import is_loopback_host
from . import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from .options import port_number, positive_seconds, websocket_url

if TYPE_CHECKING:
    from ..serve.config import ServeConfig
    from ..serve.hub import SessionHub

__all__ = ["EXTRA_MISSING", "add_arguments", "bind", "make_config", "serve_command", "uvicorn_server"]

log = logging.getLogger("realtalk.serve")

EXTRA_MISSING = "realtalk serve needs the serve extra: pip install 'realtalk[serve]'"
SHUTDOWN_GRACE_S = 15.0
"""After the drain, how long uvicorn may take to close the last connections."""
WORKER_EXIT_GRACE_S = 20.0
"""After ``--drain-s``, how long the parent waits for workers before killing them."""


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return value


def _origin(text: str) -> str:
    from ..serve.config import normal_origin

    if text != "*" and normal_origin(text) is None:
        raise argparse.ArgumentTypeError(f"not an origin: {text!r}; expected https://host[:port] or *")
    return text


def _http_url(text: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``realtalk serve``'s options to ``parser``."""
    parser.add_argument("agents_path", type=Path, metavar="AGENTS",
                        help="a directory of agent files (or one agent file)")
    parser.add_argument("--agent", metavar="NAME",
                        help="the default agent (/ws without ?agent=); default: the first agent file")
    where = parser.add_argument_group("where to listen")
    where.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    where.add_argument("--port", type=port_number, default=8080, help="port; 0 picks a free one (default 8080)")
    where.add_argument("--workers", type=_count, default=1, metavar="N",
                       help="processes sharing the port (default 1)")
    where.add_argument("--public-url", type=_http_url, metavar="URL",
                       help="the server's public https:// address (phone calls: Twilio's stream URL)")
    model = parser.add_argument_group("where sessions connect (default: OpenAI, OPENAI_API_KEY)")
    target = model.add_mutually_exclusive_group()
    target.add_argument("--emulator", action="store_true",
                        help="one built-in emulator for the server (AGENT.scenario.yaml beside the default agent)")
    target.add_argument("--url", type=websocket_url, help="any server speaking the GA Realtime protocol")
    target.add_argument("--azure", action="store_true",
                        help="Azure OpenAI (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY)")
    model.add_argument("--model", help="model, or Azure deployment name (default: each agent's model)")
    model.add_argument("--scenario", type=Path, metavar="FILE", help="with --emulator: the scenario to play")
    model.add_argument("--fast", action="store_true",
                       help="with --emulator: send audio without real-time pacing (tests, benchmarks)")
    access = parser.add_argument_group(
        "access (tokens from REALTALK_SERVE_TOKEN(S), REALTALK_SERVE_TOKEN_SECRET, REALTALK_SERVE_MINT_KEY)")
    access.add_argument("--allow-origin", action="append", type=_origin, default=[], metavar="URL",
                        help="also accept pages from this origin (repeatable; * for any);"
                             " default: only the server's own")
    access.add_argument("--max-sessions", type=_count, default=100, metavar="N",
                        help="concurrent sessions per process (100)")
    access.add_argument("--max-per-client", type=_count, default=8, metavar="N",
                        help="concurrent sessions per client address (8)")
    access.add_argument("--max-session-s", type=positive_seconds, default=1800.0, metavar="S",
                        help="longest session in seconds (1800)")
    access.add_argument("--token-ttl-s", type=positive_seconds, default=300.0, metavar="S",
                        help="lifetime of tokens minted by POST /token (300)")
    access.add_argument("--approval-timeout-s", type=positive_seconds, default=60.0, metavar="S",
                        help="how long an approval waits for the page's answer (60)")
    other = parser.add_argument_group("other")
    other.add_argument("--drain-s", type=positive_seconds, default=30.0, metavar="S",
                       help="on SIGTERM, how long sessions may finish before they are closed (30)")
    other.add_argument("--record-dir", type=Path, metavar="DIR",
                       help="write one JSONL record per session here, named by its session id")
    other.add_argument("--log-format", choices=["json", "text"], default="json",
                       help="log lines: one JSON object each (default), or text")
    from .options import price_file

    other.add_argument("--prices", type=price_file, metavar="FILE",
                       help="a price file (YAML or JSON) for cost estimates (default: REALTALK_PRICES,"
                            " else the built-in table)")


def make_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ServeConfig:
    """The :class:`ServeConfig` of the command line and the environment (checked).

    Raises:
        ConfigError: A flag or variable is wrong (one line naming it).
    """
    from ..serve.config import ServeConfig, secrets_from_env
    from .options import env_prices

    env = dict(os.environ if environ is None else environ)
    config = ServeConfig(
        agents=args.agents_path, agent=args.agent, host=args.host, port=args.port,
        emulator=args.emulator, scenario=args.scenario, emulator_fast=args.fast, url=args.url, model=args.model, azure=args.azure,
        allow_origins=tuple(args.allow_origin), max_sessions=args.max_sessions,
        max_per_client=args.max_per_client, max_session_s=args.max_session_s, drain_s=args.drain_s,
        approval_timeout_s=args.approval_timeout_s, token_ttl_s=args.token_ttl_s, workers=args.workers,
        record_dir=args.record_dir, log_format=args.log_format, public_url=args.public_url,
        prices=args.prices if args.prices is not None else env_prices(env),
        **secrets_from_env(env),
    )
    if args.fast and not args.emulator:
        raise ConfigError("--fast needs --emulator")
    if config.scenario is not None and not config.scenario.is_file():
        raise ConfigError(f"--scenario: no such file: {config.scenario}")
    config.check()
    return config


def serve_command(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C; returns the exit code.

    Returns:
        0 after a drain; 2 for a bad flag, variable or agents directory, or a missing
        extra; 1 when the address cannot be bound; 130 after a second Ctrl-C.
    """
    try:
        import starlette  # noqa: F401 - only whether the extra is installed
        import uvicorn  # noqa: F401
    except ImportError:
        print(f"realtalk: error: {EXTRA_MISSING}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = make_config(args)
    except ConfigError as exc:
        print(f"realtalk: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from ..serve import logs

    undo = logs.install(config.log_format, secrets=config.secrets,
                        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    try:
        from ..serve.hub import SessionHub

        try:
            hub = SessionHub(config)  # the agents, checked before anything listens
        except ConfigError as exc:
            print(f"realtalk: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not is_loopback_host(config.host) and not config.needs_token:
            log.warning("listening on %s without a token (REALTALK_SERVE_TOKEN or a token secret): anyone"
                        " who can reach this address can start sessions, at your cost", config.host)
        try:
            sock = bind(config.host, config.port)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            print(f"realtalk: error: cannot listen on {config.host}:{config.port}: {reason}", file=sys.stderr)
            return EXIT_ERROR
        if config.workers > 1:
            return asyncio.run(_parent(config, hub, sock))
        return asyncio.run(_serve_one(config, hub, sock, announce=True))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        undo()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _address(config: ServeConfig, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{port}"


def _announce(config: ServeConfig, sock: socket.socket, agents: list[str], emulator: str | None) -> None:
    extra = f"; emulator {emulator}" if emulator else ""
    workers = f"; {config.workers} workers" if config.workers > 1 else ""
    print(f"realtalk serve: listening on {_address(config, sock)} (agents: {', '.join(agents)}{extra}{workers})",
          flush=True)


class _Stopper:
    """Our own signal handling: the first SIGTERM or Ctrl-C drains, a second Ctrl-C exits (130)."""

    def __init__(self, drain: Any) -> None:
        self._drain = drain
        self.signals = 0
        self._loop = asyncio.get_running_loop()
        self._handled: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on Windows
                self._loop.add_signal_handler(sig, self, sig)
                self._handled.append(sig)

    def __call__(self, sig: signal.Signals) -> None:
        self.signals += 1
        if self.signals == 1:
            log.info("%s: draining", sig.name)
            self._drain()
        elif sig == signal.SIGINT:
            sys.stderr.write("realtalk serve: interrupted again, exiting now\n")
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)

    def release(self) -> None:
        for sig in self._handled:
            self._loop.remove_signal_handler(sig)
        self._handled.clear()


def uvicorn_server(app: Any, config: ServeConfig | None = None) -> Any:
    """A ``uvicorn.Server`` for ``app`` that leaves signals to its caller (tests use it too)."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server without its signal handlers (ours drain first)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    # No permessage-deflate: the audio frames are PCM or μ-law, which deflate hardly shrinks,
    # and compressing every frame was 15 % of a serve process's CPU in tests/benchmarks/bench_serve.py.
    uv = uvicorn.Config(app, log_config=None, lifespan="on", ws_max_size=1024 * 1024,
                        ws_per_message_deflate=False,
                        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S), server_header=False)
    return Server(uv)


async def _serve_one(config: ServeConfig, hub: SessionHub, sock: socket.socket, *, announce: bool) -> int:
    """One process's server on ``sock``, until a signal has drained it."""
    from ..serve.app import create_app

    try:
        await hub.start()
    except (ScenarioError, ConfigError) as exc:
        print(f"realtalk: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(config, hub)
    server = uvicorn_server(app, config)
    draining: list[asyncio.Task[None]] = []

    async def drain() -> None:
        await hub.drain(config.drain_s)
        server.should_exit = True

    stopper = _Stopper(lambda: draining.append(asyncio.create_task(drain())))
    if announce:
        _announce(config, sock, hub.agents, hub.emulator.url if hub.emulator else None)
    try:
        await server.serve(sockets=[sock])
    finally:
        stopper.release()
        await hub.stop()
    return 0


# --- workers ---------------------------------------------------------------------------


def _worker(config: ServeConfig, sock: socket.socket) -> None:
    """A worker process: its own hub and uvicorn server on the parent's socket."""
    from ..serve import logs
    from ..serve.hub import SessionHub

    logs.install(config.log_format, secrets=config.secrets)
    try:
        hub = SessionHub(config)
        code = asyncio.run(_serve_one(config, hub, sock, announce=False))
    except (RealtalkError, OSError) as exc:
        print(f"realtalk: error: worker {os.getpid()}: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.stdout.flush()
    os._exit(code)


async def _parent(config: ServeConfig, hub: SessionHub, sock: socket.socket) -> int:
    import dataclasses
    import multiprocessing

    try:
        await hub.start()  # the one emulator, with --emulator
    except (ScenarioError, ConfigError) as exc:
        print(f"realtalk: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    worker_config = dataclasses.replace(config, emulator_url=hub.url if hub.emulator else config.emulator_url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(worker_config, sock), name=f"realtalk-serve-{i}")
               for i in range(config.workers)]
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        for process in workers:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGTERM)

    stopper = _Stopper(stop)
    try:
        for process in workers:
            process.start()
        _announce(config, sock, hub.agents, hub.emulator.url if hub.emulator else None)
        code = 0
        deadline: float | None = None
        while any(p.is_alive() for p in workers):
            if not stopping.is_set() and not all(p.is_alive() for p in workers):
                failed = next(p for p in workers if not p.is_alive())
                log.error("worker %s exited with code %s; stopping the others", failed.pid, failed.exitcode)
                code = EXIT_ERROR
                stop()
            if stopping.is_set() and deadline is None:
                deadline = time.monotonic() + config.drain_s + WORKER_EXIT_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                for process in workers:
                    if process.is_alive():
                        log.error("worker %s did not stop; killing it", process.pid)
                        process.kill()
                break
            # Polled: a worker's exit is no event this loop can wait on.
            await asyncio.sleep(0.1)
        for process in workers:
            process.join(timeout=5)
        return code
    finally:
        stopper.release()
        sock.close()
        await hub.stop()
