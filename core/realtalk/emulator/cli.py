"""``realtalk emulator``: serve the emulator until Ctrl-C.

``realtalk.cli`` wires the subcommand to :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ScenarioError

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
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
        "--api-key", metavar="KEY", help="require this key (Bearer or api-key header); default: any"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="send audio as fast as possible instead of at real-time pace",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--expire-after",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="end each session with session_expired and close 1001 (default 3600)",
    )
    faults.add_argument(
        "--refuse",
        type=int,
        default=0,
        metavar="N",
        help="answer the first N connection attempts with HTTP 429",
    )
    faults.add_argument(
        "--drop-after",
        type=int,
        default=None,
        metavar="N",
        help="abort the first connection without a close frame after N server events",
    )
    faults.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="delay before reacting to each client event",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(emulator: Emulator) -> None:
    await emulator.start()
    print(f"realtalk emulator listening on {emulator.url}", flush=True)
    scenario = emulator.scenario
    print(f"scenario {scenario.name!r}: {len(scenario.turns)} turn(s); Ctrl-C stops", flush=True)
    stop = asyncio.Event()
    # SIGTERM (docker stop, systemd) ends as cleanly as Ctrl-C does.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C.

    Returns:
        0 after Ctrl-C or SIGTERM; 1 when the scenario is invalid or the address cannot be bound
        (one line on stderr, no traceback).
    """
    try:
        from .server import Emulator

        emulator = Emulator(
            args.scenario,
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            fast=args.fast,
            expire_after=args.expire_after,
            refuse_connections=args.refuse,
            drop_after_events=args.drop_after,
            latency_ms=args.latency_ms,
        )
    except ScenarioError as exc:
        print(f"realtalk emulator: {exc}", file=sys.stderr)
        return 1
    if not _is_loopback(args.host) and not args.api_key:
        print(
            f"realtalk emulator: warning: listening on {args.host} without --api-key; "
            "anyone who can reach this address can use it",
            file=sys.stderr,
        )
    try:
        asyncio.run(_serve(emulator))
    except KeyboardInterrupt:
        return 0
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
    return 0
