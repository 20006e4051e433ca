"""The GA event types the emulator speaks, in one place (for the coverage table).

``EMITTED_SERVER_EVENTS`` and ``ACCEPTED_CLIENT_EVENTS`` name, by their ``type``, the
events of the ``openai`` package's unions (``openai.types.realtime.RealtimeServerEvent``
and ``RealtimeClientEvent``) that the emulator sends and acts on; their docstrings say
why the others are not. Tests check both against the unions, and every emulator test
checks that nothing outside ``EMITTED_SERVER_EVENTS`` was sent.
"""

from __future__ import annotations

__all__ = ["ACCEPTED_CLIENT_EVENTS", "EMITTED_SERVER_EVENTS", "TRANSCRIPTION_SESSION_EVENTS"]

ACCEPTED_CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "response.create",
        "response.cancel",
    }
)
"""The GA client event types (``openai.types.realtime.RealtimeClientEvent``) the emulator
acts on. Not accepted: ``output_audio_buffer.clear`` (WebRTC/SIP only), answered with
``invalid_value`` as the live WebSocket server does. (The translation-style
``session.input_audio_buffer.append`` and ``session.close`` are accepted too, outside
the GA union.)"""

EMITTED_SERVER_EVENTS = frozenset(
    {
        "error",
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "response.created",
        "response.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "rate_limits.updated",
    }
)
"""The GA server event types (``openai.types.realtime.RealtimeServerEvent``) the
emulator can send. Never sent: ``conversation.created`` and the legacy
``conversation.item.created`` (the live GA server sends neither), the WebRTC/SIP-only
``output_audio_buffer.*`` and ``input_audio_buffer.dtmf_event_received``, and the MCP
events (``mcp_list_tools.*``, ``response.mcp_call*``: MCP tools are not emulated)."""

TRANSCRIPTION_SESSION_EVENTS = frozenset(
    {
        "session.update",
        "session.close",
        "input_audio_buffer.append",
        "session.input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    }
)
"""The client events a transcription session (``?intent=transcription``) takes; the
others are answered with ``invalid_value``."""
