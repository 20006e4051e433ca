"""The GA coverage table: every Realtime event, and what the emulator and the runtime do with it.

Test and documentation tooling, like :mod:`.conformance`: ``openai`` (a test dependency)
is imported on first use. The rows are every member of the ``openai`` package's
discriminated unions ``RealtimeServerEvent`` and ``RealtimeClientEvent``; no event name
is typed here. Each column is read from the code, never written down:

* **emulator accepts** (client events): :data:`.builders.SUPPORTED_TYPES`, the list the
  emulator's dispatcher checks every client event against.
* **emulator sends** (server events): the event types the emulator's code builds, found
  by parsing its modules: a dict display ``{"type": "<event>", ...}``, or a call to a
  helper of :data:`EVENT_HELPERS` (``error_event`` builds ``error``).
  ``tests/emulator/test_coverage_table.py`` runs a session that must observe every one.
* **runtime sends** (client events): the same scan over the runtime's modules (all of
  ``realtalk`` but ``emulator/`` and ``testing/``).
* **runtime acts on** (server events): after
  :func:`~realtalk.protocol.events.normalize_server_event`, the event has a handler in
  :class:`~realtalk.protocol.client.ClientProtocol`'s dispatch table or delta fast path,
  or in the conversation mirror's table (:mod:`realtalk.protocol.conversation`), or in
  the transcription session's table (:mod:`realtalk.protocol.transcription`, behind
  ``realtalk transcribe``). The response arbiter reads only events those tables name.

Where a row is not covered, :data:`EMULATOR_WHY_NOT` or :data:`RUNTIME_WHY_NOT` says why;
:func:`note_problems` names a note that is missing or no longer needed. Regenerate the
table in ``docs/emulator.md`` (between ``<!-- coverage:start -->`` and
``<!-- coverage:end -->``) with::

    python -m realtalk.emulator.coverage --write docs/emulator.md
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

__all__ = [
    "EMULATOR_WHY_NOT",
    "END",
    "EVENT_HELPERS",
    "RUNTIME_WHY_NOT",
    "START",
    "Row",
    "built_event_types",
    "emulator_accepts",
    "emulator_sends",
    "ga_event_types",
    "main",
    "note_problems",
    "render",
    "replace_section",
    "rows",
    "runtime_acts_on",
    "runtime_sends",
]

Side = Literal["client", "server"]

START = "<!-- coverage:start -->"
END = "<!-- coverage:end -->"
COMMAND = "python -m realtalk.emulator.coverage --write docs/emulator.md"

EVENT_HELPERS = {"error_event": "error"}
"""Functions that build an event (``realtalk.protocol.vocab``): a call counts as building it."""

_PACKAGE = Path(__file__).resolve().parent.parent  # core/realtalk
_NOT_RUNTIME = ("emulator", "testing")  # folders of realtalk that are not the runtime

# -- why not ---------------------------------------------------------------------------
# One note per event type the emulator does not send (server) or accept (client), and one
# per event type the runtime does not act on (server) or send (client). A note for a
# covered row, or a gap without a note, fails tests/emulator/test_coverage_table.py.

_WEBRTC = "WebRTC/SIP only: over a WebSocket the client owns playback"

EMULATOR_WHY_NOT: dict[str, str] = {
    # server events the emulator does not send
    "conversation.created": "not sent by the live GA server (the session starts with session.created)",
    "conversation.item.created": "the live GA server sends conversation.item.added and .done instead",
    "input_audio_buffer.dtmf_event_received": "SIP only",
    "output_audio_buffer.started": _WEBRTC,
    "output_audio_buffer.stopped": _WEBRTC,
    "output_audio_buffer.cleared": _WEBRTC,
    # client events the emulator does not accept
    "output_audio_buffer.clear": _WEBRTC + " (the live WebSocket server refuses it too)",
}

RUNTIME_WHY_NOT: dict[str, str] = {
    # server events the runtime does not act on
    "conversation.created": "nothing in it the runtime needs (not sent by the live GA server)",
    "response.content_part.added": "the deltas and output items carry the same content",
    "response.content_part.done": "the deltas and output items carry the same content",
    "rate_limits.updated": "not shown; 429 refusals are retried with backoff",
    "input_audio_buffer.dtmf_event_received": "SIP only; realtalk serve reads DTMF from Twilio",
    "output_audio_buffer.started": _WEBRTC,
    "output_audio_buffer.stopped": _WEBRTC,
    "output_audio_buffer.cleared": _WEBRTC,
    # client events the runtime does not send
    "conversation.item.retrieve": "the runtime keeps its own mirror of the conversation",
    "output_audio_buffer.clear": _WEBRTC,
}


# -- the rows --------------------------------------------------------------------------


@cache
def ga_event_types(side: Side) -> tuple[str, ...]:
    """Every GA event type of one side, from the ``openai`` package's union, sorted.

    Args:
        side: ``"server"`` (``RealtimeServerEvent``) or ``"client"`` (``RealtimeClientEvent``).
    """
    from typing import get_args

    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

    alias = RealtimeServerEvent if side == "server" else RealtimeClientEvent
    members = get_args(get_args(alias)[0])  # Annotated[Union[...], PropertyInfo] -> members
    names: set[str] = set()
    for member in members:
        (name,) = get_args(member.model_fields["type"].annotation)  # Literal["<type>"]
        names.add(name)
    return tuple(sorted(names))


def built_event_types(files: Iterable[Path]) -> frozenset[str]:
    """The ``"type"`` values of every dict display in ``files``, and the events that
    calls to :data:`EVENT_HELPERS` build (any type: the caller keeps the event names)."""
    found: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if _constant(key) == "type" and isinstance(_constant(value), str):
                        found.add(str(_constant(value)))
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in EVENT_HELPERS:
                    found.add(EVENT_HELPERS[name])
    return frozenset(found)


def _constant(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _python_files(root: Path, skip: Sequence[str] = ()) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if p.relative_to(root).parts[0] not in skip)


def emulator_accepts() -> frozenset[str]:
    """Client event types the emulator's dispatcher accepts."""
    from .builders import SUPPORTED_TYPES

    return frozenset(SUPPORTED_TYPES)


@cache
def emulator_sends() -> frozenset[str]:
    """GA server event types the emulator's modules build (read once per process)."""
    built = built_event_types(_python_files(_PACKAGE / "emulator"))
    return built & frozenset(ga_event_types("server"))


def runtime_sends() -> frozenset[str]:
    """GA client event types the runtime's modules build."""
    built = built_event_types(_python_files(_PACKAGE, _NOT_RUNTIME))
    return built & frozenset(ga_event_types("client"))


def runtime_acts_on() -> frozenset[str]:
    """GA server event types that reach a handler of the runtime (after normalising): the
    conversation client's tables, or the transcription session's (``realtalk transcribe``)."""
    from ..protocol import client, conversation, transcription
    from ..protocol.events import normalize_server_event

    handled = (
        set(client._HANDLERS)
        | client.DELTA_TYPES
        | set(conversation._SERVER_HANDLERS)
        | set(transcription._HANDLERS)
    )
    return frozenset(
        kind
        for kind in ga_event_types("server")
        if any(e.get("type") in handled for e in normalize_server_event({"type": kind}))
    )


@dataclass(frozen=True)
class Row:
    """One event type and its coverage.

    Attributes:
        event: The event type.
        emulator: The emulator sends it (server event) or accepts it (client event).
        runtime: The runtime acts on it (server event) or sends it (client event).
    """

    event: str
    emulator: bool
    runtime: bool

    @property
    def why_not(self) -> str:
        """The notes for what is not covered ("" when everything is)."""
        parts = []
        if not self.emulator:
            parts.append(f"emulator: {EMULATOR_WHY_NOT.get(self.event, '(no note)')}")
        if not self.runtime:
            parts.append(f"runtime: {RUNTIME_WHY_NOT.get(self.event, '(no note)')}")
        return "; ".join(parts)


def rows(side: Side) -> list[Row]:
    """The table's rows for one side, sorted by event type."""
    if side == "server":
        emulator, runtime = emulator_sends(), runtime_acts_on()
    else:
        emulator, runtime = emulator_accepts(), runtime_sends()
    return [Row(t, t in emulator, t in runtime) for t in ga_event_types(side)]


def note_problems() -> list[str]:
    """Notes that are missing, no longer needed, or name no GA event; one line each."""
    problems = []
    every = {row.event: row for side in ("server", "client") for row in rows(side)}
    for column, notes, field in (
        ("EMULATOR_WHY_NOT", EMULATOR_WHY_NOT, "emulator"),
        ("RUNTIME_WHY_NOT", RUNTIME_WHY_NOT, "runtime"),
    ):
        for event, row in every.items():
            covered = bool(getattr(row, field))
            if covered and event in notes:
                problems.append(f"{column}[{event!r}]: now covered, remove the note")
            elif not covered and event not in notes:
                problems.append(f"{column}[{event!r}]: not covered, say why in a note")
        for event, note in notes.items():
            if event not in every:
                problems.append(f"{column}[{event!r}]: no such GA event in the openai package")
            if "|" in note or "\n" in note:
                problems.append(f"{column}[{event!r}]: a note may hold no '|' or line break")
    return problems


# -- the markdown ----------------------------------------------------------------------


def render() -> str:
    """The generated part of the page, markers included, ending in a newline."""
    server, client = rows("server"), rows("client")
    extra = sorted(emulator_accepts() - set(ga_event_types("client")))
    lines = [
        START,
        f"<!-- generated by `{COMMAND}`: do not edit by hand -->",
        "",
        _summary(server, client),
        "",
        "Server events:",
        "",
        *_table(server, "Emulator sends", "Runtime acts on"),
        "",
        "Client events:",
        "",
        *_table(client, "Emulator accepts", "Runtime sends"),
    ]
    if extra:
        names = " and ".join(f"`{e}`" for e in extra)
        lines += ["", f"The emulator also accepts {names}, which the openai package does not list."]
    return "\n".join([*lines, END]) + "\n"


def _summary(server: list[Row], client: list[Row]) -> str:
    def count(rows_: list[Row], column: str) -> int:
        return sum(getattr(r, column) for r in rows_)

    return (
        f"The emulator sends {count(server, 'emulator')} of the {len(server)} GA server event"
        f" types and accepts {count(client, 'emulator')} of the {len(client)} client event types;"
        f" the runtime acts on {count(server, 'runtime')} of the {len(server)} and sends"
        f" {count(client, 'runtime')} of the {len(client)}."
    )


def _table(rows_: list[Row], emulator: str, runtime: str) -> list[str]:
    lines = [f"| Event | {emulator} | {runtime} | Why not |", "|---|---|---|---|"]
    for row in rows_:
        marks = ["yes" if row.emulator else "no", "yes" if row.runtime else "no"]
        lines.append(f"| `{row.event}` | {marks[0]} | {marks[1]} | {row.why_not} |")
    return lines


def replace_section(page: str, section: str) -> str:
    """``page`` with the text from :data:`START` to :data:`END` (and its line end)
    replaced by ``section``.

    Raises:
        ValueError: The page lacks one marker, or has them out of order or twice.
    """
    starts, ends = page.count(START), page.count(END)
    begin, end = page.find(START), page.find(END)
    if starts != 1 or ends != 1 or end < begin:
        raise ValueError(
            f"expected one {START} line followed by one {END} line; found {starts} and {ends}"
        )
    stop = end + len(END)
    if page[stop : stop + 1] == "\n":
        stop += 1
    return page[:begin] + section + page[stop:]


# -- the command -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m realtalk.emulator.coverage [--write PAGE | --check PAGE]``.

    With no option, print the table. ``--write`` puts it into the page between the
    markers; ``--check`` exits 1 when the page's table differs. Either way, a missing or
    stale note is reported and makes the exit status 1.
    """
    parser = argparse.ArgumentParser(
        prog="python -m realtalk.emulator.coverage", description=__doc__.splitlines()[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PAGE", type=Path, help="rewrite the page's table")
    group.add_argument("--check", metavar="PAGE", type=Path, help="exit 1 if it is out of date")
    args = parser.parse_args(argv)
    section = render()
    status = 0
    page_path: Path | None = args.write or args.check
    if page_path is None:
        sys.stdout.write(section)
    else:
        try:
            page = page_path.read_text(encoding="utf-8")
            updated = replace_section(page, section)
        except (OSError, ValueError) as exc:
            print(f"error: {page_path}: {exc}", file=sys.stderr)
            return 2
        if args.write and updated != page:
            page_path.write_text(updated, encoding="utf-8")
            print(f"{page_path}: coverage table updated")
        elif args.check and updated != page:
            print(f"{page_path}: the coverage table is out of date; run {COMMAND}")
            status = 1
    for problem in note_problems():
        print(f"realtalk/emulator/coverage.py: {problem}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
