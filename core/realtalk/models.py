"""What realtalk knows about the Realtime and transcription models, for checks before connecting.

Plain data, no I/O. The names follow the official ``openai`` package's types
(``openai.types.realtime``), and ``tests/test_models.py`` checks that every model those
types list is classified here, so a new model in the package is noticed.

A model name realtalk does not know (an Azure deployment name, a model newer than this
list) is passed through unchecked: only settings that a *known* model does not take are
refused.
"""

from __future__ import annotations

__all__ = [
    "BUILTIN_VOICES",
    "DEFAULT_MODEL",
    "DEFAULT_REASONING_EFFORT",
    "DEPRECATED_MODELS",
    "DEPRECATED_TRANSCRIPTION_MODELS",
    "DIARIZE_MODELS",
    "REALTIME_MODELS",
    "REASONING_EFFORTS",
    "REASONING_MODELS",
    "TRANSCRIPTION_MODELS",
    "TRANSCRIPTION_MODEL_ORDER",
    "deprecation",
    "takes_reasoning",
    "transcription_option_problem",
]

DEFAULT_MODEL = "gpt-realtime-2.1"
"""The model an agent uses when its file names none: the current flagship."""

REASONING_MODELS = frozenset({"gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"})
"""Realtime models that take ``reasoning`` and ``parallel_tool_calls`` (the types say
"reasoning-capable Realtime models such as gpt-realtime-2")."""

REALTIME_MODELS = REASONING_MODELS | frozenset({
    "gpt-realtime", "gpt-realtime-1.5", "gpt-realtime-2025-08-28",
    "gpt-realtime-mini", "gpt-realtime-mini-2025-10-06", "gpt-realtime-mini-2025-12-15",
    "gpt-4o-realtime-preview", "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview", "gpt-4o-mini-realtime-preview-2024-12-17",
    "gpt-audio-1.5", "gpt-audio-mini", "gpt-audio-mini-2025-10-06", "gpt-audio-mini-2025-12-15",
})
"""Every Realtime model the ``openai`` package names."""

DEPRECATED_MODELS = {
    model: "2027-01-20" for model in (
        "gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-mini", "gpt-realtime-mini-2025-12-15",
        "gpt-audio-mini", "gpt-audio-mini-2025-12-15",
    )
}
"""Realtime models the ``openai`` types list as deprecated, with their announced shutdown date."""

DEPRECATED_TRANSCRIPTION_MODELS = {
    model: "2027-02-26" for model in (
        "whisper-1", "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15",
        "gpt-4o-transcribe", "gpt-4o-transcribe-diarize",
    )
}
"""Transcription model -> announced shutdown date, as the ``openai`` package's types document it."""

REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")
"""The values of ``reasoning.effort`` (``RealtimeReasoningEffort``)."""

DEFAULT_REASONING_EFFORT = "low"
"""The effort a reasoning model uses when a session sets none (the OpenAPI spec's default)."""

BUILTIN_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
"""The built-in voices; any other voice is a custom voice's id (``{"id": "voice_..."}``)."""

TRANSCRIPTION_MODEL_ORDER = (
    "gpt-transcribe", "gpt-live-transcribe", "gpt-realtime-whisper", "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-transcribe-diarize",
    "whisper-1",
)
"""The transcription models, current ones first (the order messages and help list them in)."""

TRANSCRIPTION_MODELS = frozenset(TRANSCRIPTION_MODEL_ORDER)

DIARIZE_MODELS = frozenset({"gpt-4o-transcribe-diarize"})
"""Transcription models that label speakers (``.segment`` events with ``speaker``)."""
"""Every input transcription model the ``openai`` package names (``AudioTranscription``)."""

# Which transcription models take each option, as the AudioTranscription docstrings say.
# An option not listed here (model, language) is taken by every model.
_ONLY_WITH = {
    "languages": frozenset({"gpt-transcribe", "gpt-live-transcribe"}),
    "keywords": frozenset({"gpt-transcribe", "gpt-live-transcribe"}),
    "delay": frozenset({"gpt-realtime-whisper"}),
}
_NOT_WITH = {
    "prompt": frozenset({"gpt-realtime-whisper", "gpt-4o-transcribe-diarize"}),
}


def deprecation(model: str) -> str | None:
    """A warning for a deprecated model, naming its shutdown and the default; else None."""
    shutdown = DEPRECATED_MODELS.get(model)
    if shutdown is None:
        return None
    return f"model {model} is deprecated (shutdown announced for {shutdown}); the current one is {DEFAULT_MODEL}"


def takes_reasoning(model: str) -> bool | None:
    """Whether ``model`` takes ``reasoning`` and ``parallel_tool_calls``: True or False for a
    known model, None for a name realtalk does not know (such as an Azure deployment)."""
    if model in REASONING_MODELS:
        return True
    if model in REALTIME_MODELS:
        return False
    return None


def transcription_option_problem(model: str, option: str) -> str | None:
    """Why the transcription ``option`` does not go with ``model``, or None when it does (or
    when realtalk does not know the model)."""
    if model not in TRANSCRIPTION_MODELS:
        return None
    only = _ONLY_WITH.get(option)
    if only is not None and model not in only:
        return f"{option!r} is taken only by {', '.join(sorted(only))}, not by {model}"
    if model in _NOT_WITH.get(option, frozenset()):
        return f"{option!r} is not taken by {model}"
    return None
