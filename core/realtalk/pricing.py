"""Tokens by kind and what they cost: an estimate from a documented price table.

A Realtime ``response.done`` carries the response's token usage (``input_tokens``,
``output_tokens`` and their ``*_token_details``). :func:`tokens_by_kind` splits it into
the kinds that are priced apart (:data:`KINDS`); :func:`estimate` prices them with
:data:`PRICES` (USD per 1M tokens, OpenAI's published prices on :data:`AS_OF`) or a table
of your own; :class:`UsageTotals` sums turns and sessions::

    tokens = tokens_by_kind(event["response"]["usage"])
    cost = estimate(tokens, "gpt-realtime")        # None when the model has no known price

Cached input tokens are part of the input counts the server reports; here they are
counted once, as their cached kind, and billed at the cached price. An estimate is not a
bill: prices change, and what OpenAI (or Azure) charges is what counts.

:func:`load_prices` reads a price file (YAML or JSON) over the built-in table; ``--prices
FILE`` and ``REALTALK_PRICES`` use it. Pure: nothing here reads a file or the environment
except :func:`load_prices`, when called.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "AS_OF",
    "INPUT_KINDS",
    "KINDS",
    "OUTPUT_KINDS",
    "PRICES",
    "SOURCE",
    "Price",
    "UsageTotals",
    "estimate",
    "load_prices",
    "tokens_by_kind",
]

INPUT_KINDS = ("input_text", "input_audio", "input_image",
               "input_cached_text", "input_cached_audio", "input_cached_image")
"""Input token kinds. ``input_text`` and the like count only the tokens not cached."""
OUTPUT_KINDS = ("output_text", "output_audio")
"""Output token kinds."""
KINDS = INPUT_KINDS + OUTPUT_KINDS
"""Every kind of token priced apart, in the order they are shown."""

AS_OF = "2026-12-02"
"""The day the built-in prices were taken from OpenAI's model pages."""
SOURCE = "https://developers.openai.com/api/docs/models (each model's page, Pricing)"
"""Where the built-in prices come from."""


@dataclass(frozen=True)
class Price:
    """What one model charges, in USD per 1M tokens of each kind; None: not known.

    A kind whose price is None makes an estimate unknown only when tokens of that kind
    were used (a model without image prices still prices a conversation without images).
    """

    input_text: float | None = None
    input_audio: float | None = None
    input_image: float | None = None
    input_cached_text: float | None = None
    input_cached_audio: float | None = None
    input_cached_image: float | None = None
    output_text: float | None = None
    output_audio: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """``{kind: USD per 1M tokens or None}`` in :data:`KINDS` order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _price(text: tuple[float, float, float], audio: tuple[float, float, float],
           image: tuple[float, float] | None = None) -> Price:
    """A price from the model page's three tables: (input, cached input, output)."""
    return Price(input_text=text[0], input_cached_text=text[1], output_text=text[2],
                 input_audio=audio[0], input_cached_audio=audio[1], output_audio=audio[2],
                 input_image=image[0] if image else None, input_cached_image=image[1] if image else None)


# Image prices only where the model's page was seen to publish them.
_REALTIME = _price((4.0, 0.40, 16.0), (32.0, 0.40, 64.0))
_REALTIME_15 = _price((4.0, 0.40, 16.0), (32.0, 0.40, 64.0), (5.0, 0.50))
_REALTIME_2 = _price((4.0, 0.40, 24.0), (32.0, 0.40, 64.0), (5.0, 0.50))
_MINI = _price((0.60, 0.06, 2.40), (10.0, 0.30, 20.0))
_MINI_21 = _price((0.60, 0.06, 2.40), (10.0, 0.30, 20.0), (0.80, 0.08))
_4O_PREVIEW = _price((5.0, 2.50, 20.0), (40.0, 2.50, 80.0))
_4O_MINI_PREVIEW = _price((0.60, 0.30, 2.40), (10.0, 0.30, 20.0))

PRICES: Mapping[str, Price | None] = MappingProxyType({
    "gpt-realtime": _REALTIME,
    "gpt-realtime-2025-08-28": _REALTIME,
    "gpt-realtime-1.5": _REALTIME_15,
    "gpt-realtime-2": _REALTIME_2,
    "gpt-realtime-2.1": _REALTIME_2,
    "gpt-realtime-mini": _MINI,
    "gpt-realtime-mini-2025-10-06": _MINI,
    "gpt-realtime-mini-2025-12-15": _MINI,
    "gpt-realtime-2.1-mini": _MINI_21,
    "gpt-4o-realtime-preview": _4O_PREVIEW,
    "gpt-4o-realtime-preview-2025-06-03": _4O_PREVIEW,
    "gpt-4o-realtime-preview-2024-12-17": _4O_PREVIEW,
    # The first preview snapshot, before the December 2024 price cut.
    "gpt-4o-realtime-preview-2024-10-01": _price((5.0, 2.50, 20.0), (100.0, 20.0, 200.0)),
    "gpt-4o-mini-realtime-preview": _4O_MINI_PREVIEW,
    "gpt-4o-mini-realtime-preview-2024-12-17": _4O_MINI_PREVIEW,
    # Chat Completions audio models the Realtime API also accepts: their pages publish
    # text prices only, so no estimate is made for them (give one with a price file).
    "gpt-audio-1.5": None,
    "gpt-audio-mini": None,
    "gpt-audio-mini-2025-10-06": None,
    "gpt-audio-mini-2025-12-15": None,
})
"""The built-in table: every realtime model the ``openai`` package lists, by name.
None: listed, but no complete published price (no estimate)."""


# --- tokens ------------------------------------------------------------------------------


def _count(data: object, key: str) -> int:
    """``data[key]`` as a token count: 0 when missing, not a whole number, or negative."""
    if not isinstance(data, Mapping):
        return 0
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def tokens_by_kind(usage: Mapping[str, Any]) -> dict[str, int]:
    """The tokens of one ``response.done`` usage object, by kind (every kind of :data:`KINDS`).

    Cached tokens are a subset of the reported input counts: each is counted once, as
    ``input_cached_*``, and the rest as ``input_*``. Without details (a server that
    reports only totals) the totals count as text; cached tokens without their own
    details as cached text, then cached audio.
    """
    tokens = dict.fromkeys(KINDS, 0)
    details = usage.get("input_token_details")
    if isinstance(details, Mapping):
        text, audio, image = (_count(details, "text_tokens"), _count(details, "audio_tokens"),
                              _count(details, "image_tokens"))
        cached_details = details.get("cached_tokens_details")
        if isinstance(cached_details, Mapping):
            cached = [_count(cached_details, f"{kind}_tokens") for kind in ("text", "audio", "image")]
        else:  # only a total: text first, then audio, never more than there is
            total = _count(details, "cached_tokens")
            cached_text = min(total, text)
            cached = [cached_text, min(total - cached_text, audio), 0]
        for kind, used, hit in zip(("text", "audio", "image"), (text, audio, image), cached):
            hit = min(hit, used) if used else hit
            tokens[f"input_cached_{kind}"] = hit
            tokens[f"input_{kind}"] = max(used - hit, 0)
    else:
        tokens["input_text"] = _count(usage, "input_tokens")
    out = usage.get("output_token_details")
    if isinstance(out, Mapping):
        tokens["output_text"] = _count(out, "text_tokens")
        tokens["output_audio"] = _count(out, "audio_tokens")
    else:
        tokens["output_text"] = _count(usage, "output_tokens")
    return tokens


def _as_kinds(usage_or_kinds: Mapping[str, Any]) -> dict[str, int]:
    """Token kinds as they are, or split from a usage object."""
    if any(kind in usage_or_kinds for kind in KINDS):
        return {kind: _count(usage_or_kinds, kind) for kind in KINDS}
    return tokens_by_kind(usage_or_kinds)


# --- cost --------------------------------------------------------------------------------


def estimate(usage_or_kinds: Mapping[str, Any], model: str,
             prices: Mapping[str, Price | None] = PRICES) -> float | None:
    """The estimated cost in USD of a usage object or of tokens by kind, for ``model``.

    Returns:
        The cost, or None when ``prices`` has no price for ``model``, or none for a kind
        of token that was used.
    """
    price = prices.get(model)
    if price is None:
        return None
    cost = 0.0
    for kind, count in _as_kinds(usage_or_kinds).items():
        if count:
            per_million = getattr(price, kind)
            if per_million is None:
                return None
            cost += count * per_million / 1_000_000
    return cost


@dataclass
class UsageTotals:
    """Tokens by kind and their estimated cost, summed: over a turn's responses, or a
    session's turns.

    Attributes:
        model: The model the tokens are priced for.
        prices: The price table.
        tokens: Tokens by kind (every kind of :data:`KINDS`).
        cost_usd: The estimated cost; None once anything added had no known price.
        responses: Usage objects added.
    """

    model: str
    prices: Mapping[str, Price | None] = field(default_factory=lambda: PRICES, repr=False)
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    cost_usd: float | None = 0.0
    responses: int = 0

    def add(self, usage: Mapping[str, Any]) -> dict[str, int]:
        """Add one ``response.done`` usage object; returns its tokens by kind."""
        tokens = tokens_by_kind(usage)
        self._add(tokens, estimate(tokens, self.model, self.prices), 1)
        return tokens

    def add_all(self, usages: Iterable[Mapping[str, Any]]) -> None:
        """Add each usage object (a turn's ``usage``)."""
        for usage in usages:
            self.add(usage)

    def add_totals(self, other: UsageTotals) -> None:
        """Add another total (a turn to its session)."""
        self._add(other.tokens, other.cost_usd, other.responses)

    def _add(self, tokens: Mapping[str, int], cost: float | None, responses: int) -> None:
        for kind in KINDS:
            self.tokens[kind] += tokens.get(kind, 0)
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost
        self.responses += responses

    @property
    def input_tokens(self) -> int:
        """Every input token, cached or not."""
        return sum(self.tokens[kind] for kind in INPUT_KINDS)

    @property
    def output_tokens(self) -> int:
        """Every output token."""
        return sum(self.tokens[kind] for kind in OUTPUT_KINDS)

    @property
    def cached_tokens(self) -> int:
        """Input tokens billed at a cached price."""
        return sum(self.tokens[kind] for kind in INPUT_KINDS if "cached" in kind)

    def as_dict(self) -> dict[str, Any]:
        """``{"tokens": {kind: n}, "cost_usd": float | None}``: what ``--json`` and the page show."""
        return {"tokens": dict(self.tokens), "cost_usd": self.cost_usd}


# --- price files -------------------------------------------------------------------------


def load_prices(path: str | Path, base: Mapping[str, Price | None] = PRICES) -> dict[str, Price | None]:
    """``base`` updated from a price file (YAML or JSON).

    The file maps model (or Azure deployment) names to one of: a mapping of kinds
    (:data:`KINDS`) to USD per 1M tokens, which replaces those kinds of the model's
    built-in price; the name of a model to price it like; or null (no estimate)::

        gpt-realtime:
          output_audio: 60
        my-azure-deployment: gpt-realtime-mini

    Raises:
        ConfigError: The file cannot be read or is not such a mapping: one line naming
            the file, the line and the key.
    """
    from .yamlfile import did_you_mean, load_yaml

    doc = load_yaml(path)
    if not isinstance(doc.data, dict) or not doc.data:
        raise doc.error("a price file maps model names to prices (USD per 1M tokens of each kind:"
                        f" {', '.join(KINDS)})")
    table = dict(base)
    for model, entry in doc.data.items():
        where = [str(model)]
        if entry is None:
            table[str(model)] = None
        elif isinstance(entry, str):
            if entry not in table:
                raise doc.error(f"no price known for {entry!r} to price {model!r} like"
                                f"{did_you_mean(entry, table)}", where)
            table[str(model)] = table[entry]
        elif isinstance(entry, dict):
            values = (table.get(str(model)) or Price()).as_dict()
            for kind, value in entry.items():
                if kind not in values:
                    raise doc.error(f"unknown price kind {kind!r}{did_you_mean(str(kind), KINDS)};"
                                    f" kinds: {', '.join(KINDS)}", [*where, kind])
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or not math.isfinite(value) or value < 0):
                    raise doc.error(f"must be a number of USD per 1M tokens, 0 or more, not {value!r}",
                                    [*where, kind])
                values[kind] = None if value is None else float(value)
            table[str(model)] = Price(**values)
        else:
            raise doc.error("expected a mapping of price kinds to USD per 1M tokens, the name of a"
                            f" model to price it like, or null; not {type(entry).__name__}", where)
    return table
