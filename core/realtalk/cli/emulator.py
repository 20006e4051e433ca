"""``realtalk emulator``: serve the emulator until Ctrl-C or SIGTERM.

``realtalk.cli`` wires the subcommand to :func:`add_arguments` and :func:`run`. The key
clients must present comes from ``--api-key`` or, kept out of the process list, from
``REALTALK_EMULATOR_API_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from ..profiles import is_loopback_host
from . import EXIT_INTERRUPTED, EXIT_TERMINATED
from .options import non_negative_int, non_negative_number, port_number, positive_seconds

if TYPE_CHECKING:
    from ..emulator.server import Emulator

__all__ = ["API_KEY_VARIABLE", "RECORDED_EVENTS", "add_arguments", "run"]

API_KEY_VARIABLE = "REALTALK_EMULATOR_API_KEY"
"""Where the emulator reads its key when ``--api-key`` is not given."""

RECORDED_EVENTS = 1000
"""Events each connection's in-memory record keeps under the command: nothing reads it
there, and 300 sessions of the default 100,000 would hold gigabytes after an hour."""
KEPT_CONNECTIONS = 1000
"""Connection records the command keeps (nothing reads them there): a server up for days
holds at most this many."""


DEFAULT_AUDIO_SPEED = 4.0
"""``--audio-speed``'s default (the same as ``realtalk.emulator.responses``'s; kept here
so that ``--help`` does not import the emulator)."""
DEFAULT_TRANSCRIPTION_DELAY_MS = 500.0
"""``--transcription-delay-ms``'s default (as ``realtalk.emulator.protocol``'s)."""


def audio_speed(text: str) -> float:
    """A finite ratio above zero, for ``--audio-speed``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=8765,
        help="port to listen on; 0 picks a free one (default 8765)",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="a *.scenario.yaml script of replies (default: fallback replies)",
    )
    parser.add_argument(
        "--api-key", metavar="KEY",
        help=f"require this key (Bearer, api-key header or openai-insecure-api-key subprotocol);"
             f" default: ${API_KEY_VARIABLE}, else any"
             f" (prefer the variable: the command line is visible to other users)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="send audio as fast as possible instead of at real-time pace",
    )
    parser.add_argument(
        "--audio-speed",
        type=audio_speed,
        default=DEFAULT_AUDIO_SPEED,
        metavar="RATIO",
        help="send assistant audio RATIO times faster than real time, as the live server"
             f" streams ahead of playback (default {DEFAULT_AUDIO_SPEED:g}; 1 = real time)",
    )
    parser.add_argument(
        "--transcription-delay-ms",
        type=non_negative_number,
        default=DEFAULT_TRANSCRIPTION_DELAY_MS,
        metavar="MS",
        help="send the input transcription MS after each commit, as live usually after the"
             f" response began (default {DEFAULT_TRANSCRIPTION_DELAY_MS:g}; 0 = at once)",
    )
    parser.add_argument(
        "--per-connection",
        action="store_true",
        help="each connection plays the scenario from its first turn (default: connections"
             " share one place in it, so a reconnecting client goes on where it was)",
    )
    parser.add_argument(
        "--record-audio",
        action="store_true",
        help="keep audio payloads in the in-memory record of each connection"
             " (default: their length only)",
    )
    tls = parser.add_argument_group("TLS (serve wss://, as the Node SDK requires)")
    tls.add_argument(
        "--tls-cert", type=Path, metavar="FILE", help="PEM certificate (needs --tls-key)"
    )
    tls.add_argument(
        "--tls-key", type=Path, metavar="FILE", help="its unencrypted PEM private key"
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--expire-after",
        type=positive_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="end each session with session_expired and close 1001 (default 3600)",
    )
    faults.add_argument(
        "--refuse",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="answer the first N connection attempts with HTTP 429",
    )
    faults.add_argument(
        "--drop-after",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="abort the first connection without a close frame after N server events",
    )
    faults.add_argument(
        "--latency-ms",
        type=non_negative_number,
        default=0.0,
        metavar="MS",
        help="delay before reacting to each client event",
    )


async def _serve(emulator: Emulator) -> int:
    await emulator.start()
    print(f"realtalk emulator listening on {emulator.url}", flush=True)
    scenario = emulator.scenario
    print(f"scenario {scenario.name!r}: {len(scenario.turns)} turn(s); Ctrl-C stops", flush=True)
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[int] = loop.create_future()

    def stop(code: int) -> None:
        if not stopped.done():
            stopped.set_result(code)

    # Ctrl-C and SIGTERM (docker stop, systemd) both close every session cleanly; after
    # the first, signals get their default handling back, in case closing ever hangs.
    handled = []
    for sig, code in ((signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on Windows
            loop.add_signal_handler(sig, stop, code)
            handled.append(sig)
    try:
        return await stopped
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await emulator.stop()


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM.

    Returns:
        130 after Ctrl-C, 143 after SIGTERM (sessions closed either way); 1 when the
        scenario is invalid, the TLS certificate or key cannot be used, or the address
        cannot be bound (one line on stderr, no traceback).
    """
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    if (args.tls_cert is None) != (args.tls_key is None):
        given, missing = ("--tls-cert", "--tls-key") if args.tls_key is None else ("--tls-key", "--tls-cert")
        print(f"realtalk emulator: {given} needs {missing} too", file=sys.stderr)
        return 1
    try:
        from ..emulator.server import Emulator

        emulator = Emulator(
            args.scenario,
            host=args.host,
            port=args.port,
            api_key=api_key,
            fast=args.fast,
            expire_after=args.expire_after,
            refuse_connections=args.refuse,
            drop_after_events=args.drop_after,
            latency_ms=args.latency_ms,
            audio_speed=args.audio_speed,
            transcription_delay_ms=args.transcription_delay_ms,
            record_audio=args.record_audio,
            max_recorded_events=RECORDED_EVENTS,
            per_connection=args.per_connection,
            max_connections=KEPT_CONNECTIONS,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
    except ConfigError as exc:  # the scenario, or the TLS certificate and key
        print(f"realtalk emulator: {exc}", file=sys.stderr)
        return 1
    if not is_loopback_host(args.host) and not api_key:
        print(
            f"realtalk emulator: warning: listening on {args.host} without --api-key or"
            f" {API_KEY_VARIABLE}; anyone who can reach this address can use it",
            file=sys.stderr,
        )
    try:
        return asyncio.run(_serve(emulator))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        reason = (
            "address already in use"
            if exc.errno == errno.EADDRINUSE
            else (exc.strerror or str(exc))
        )
        print(
            f"realtalk emulator: cannot listen on {args.host}:{args.port}: {reason}",
            file=sys.stderr,
        )
        return 1
