"""realtalk.pricing: tokens by kind from response.done usage, the price table, price files."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
from realtalk.exceptions import ConfigError
from realtalk.pricing import (
    AS_OF,
    KINDS,
    PRICES,
    Price,
    UsageTotals,
    estimate,
    load_prices,
    tokens_by_kind,
)

# A GA response.done usage object (the shape of openai.types.realtime.RealtimeResponseUsage).
USAGE: dict[str, Any] = {
    "total_tokens": 821,
    "input_tokens": 789,
    "output_tokens": 32,
    "input_token_details": {
        "text_tokens": 313,
        "audio_tokens": 476,
        "image_tokens": 0,
        "cached_tokens": 640,
        "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
}


def _literals(annotation: Any) -> list[str]:
    found: list[str] = []
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            found += [value for value in typing.get_args(arg) if isinstance(value, str)]
        else:
            found += _literals(arg)
    return found


def realtime_models() -> list[str]:
    from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest

    return _literals(RealtimeSessionCreateRequest.model_fields["model"].annotation)


def test_the_table_names_every_realtime_model_of_the_openai_package() -> None:
    listed = realtime_models()
    assert "gpt-realtime" in listed and "gpt-realtime-mini" in listed
    # Every listed model has an entry: a price, or None saying no price is known.
    assert sorted(set(listed) - set(PRICES)) == []
    unknown = sorted(model for model in listed if PRICES[model] is None)
    assert unknown == ["gpt-audio-1.5", "gpt-audio-mini", "gpt-audio-mini-2025-10-06", "gpt-audio-mini-2025-12-15"]


def test_usage_fields_read_are_those_of_the_openai_types() -> None:
    from openai.types.realtime.realtime_response_usage import RealtimeResponseUsage

    parsed = RealtimeResponseUsage.model_validate(USAGE)
    # The example round-trips through the package's model: no field of it is made up.
    assert parsed.model_dump(exclude_none=True) == USAGE


def test_published_prices_of_gpt_realtime_and_mini() -> None:
    assert PRICES["gpt-realtime"] == Price(input_text=4.0, input_cached_text=0.4, output_text=16.0, input_audio=32.0,
                                           input_cached_audio=0.4, output_audio=64.0)
    mini = PRICES["gpt-realtime-mini"]
    assert mini is not None
    assert (mini.input_audio, mini.input_cached_audio, mini.output_audio) == (10.0, 0.3, 20.0)
    assert (mini.input_text, mini.input_cached_text, mini.output_text) == (0.6, 0.06, 2.4)


def test_cached_tokens_are_counted_once_as_cached() -> None:
    tokens = tokens_by_kind(USAGE)
    assert tokens == {"input_text": 57, "input_audio": 92, "input_image": 0, "input_cached_text": 256,
                      "input_cached_audio": 384, "input_cached_image": 0, "output_text": 9, "output_audio": 23}
    assert sum(tokens.values()) == USAGE["total_tokens"]


def test_estimate_bills_cached_tokens_at_the_cached_price() -> None:
    expected = (57 * 4 + 92 * 32 + 256 * 0.4 + 384 * 0.4 + 9 * 16 + 23 * 64) / 1_000_000
    assert estimate(USAGE, "gpt-realtime") == pytest.approx(expected)
    assert estimate(tokens_by_kind(USAGE), "gpt-realtime") == pytest.approx(expected)
    mini = (57 * 0.6 + 92 * 10 + 256 * 0.06 + 384 * 0.3 + 9 * 2.4 + 23 * 20) / 1_000_000
    assert estimate(USAGE, "gpt-realtime-mini") == pytest.approx(mini)


def test_no_estimate_without_a_price() -> None:
    assert estimate(USAGE, "my-azure-deployment") is None
    assert estimate(USAGE, "gpt-audio-mini") is None
    # A kind without a price only matters when it was used.
    no_images = {"gpt-4o-realtime-preview": PRICES["gpt-4o-realtime-preview"]}
    assert estimate(USAGE, "gpt-4o-realtime-preview", no_images) is not None
    with_image = {**USAGE, "input_token_details": {**USAGE["input_token_details"], "image_tokens": 10}}
    assert tokens_by_kind(with_image)["input_image"] == 10
    assert estimate(with_image, "gpt-4o-realtime-preview", no_images) is None


def test_partial_and_odd_usage_objects() -> None:
    # Totals only (a server without details): text; cached without details: text first.
    assert tokens_by_kind({"input_tokens": 12, "output_tokens": 3}) == {
        **dict.fromkeys(KINDS, 0), "input_text": 12, "output_text": 3}
    only_total = {"input_token_details": {"text_tokens": 10, "audio_tokens": 50, "cached_tokens": 30}}
    tokens = tokens_by_kind(only_total)
    assert (tokens["input_text"], tokens["input_cached_text"], tokens["input_audio"],
            tokens["input_cached_audio"]) == (0, 10, 30, 20)
    # Wrong types and negative numbers count as nothing, never as an error.
    odd = {"input_tokens": "12", "output_tokens": -3, "input_token_details": None,
           "output_token_details": {"text_tokens": True, "audio_tokens": 2.5}}
    assert tokens_by_kind(odd) == dict.fromkeys(KINDS, 0)
    assert tokens_by_kind({}) == dict.fromkeys(KINDS, 0)


def test_usage_totals_sum_turns_and_sessions() -> None:
    session = UsageTotals("gpt-realtime")
    for _ in range(2):
        turn = UsageTotals("gpt-realtime")
        turn.add_all([USAGE, {"input_tokens": 10, "output_tokens": 5}])
        session.add_totals(turn)
    assert session.responses == 4
    assert session.tokens["input_text"] == 2 * (57 + 10) and session.tokens["output_text"] == 2 * (9 + 5)
    assert session.input_tokens == 2 * (789 + 10) and session.output_tokens == 2 * (32 + 5)
    assert session.cached_tokens == 2 * 640
    one = estimate(USAGE, "gpt-realtime")
    assert one is not None
    assert session.cost_usd == pytest.approx(2 * (one + (10 * 4 + 5 * 16) / 1_000_000))
    assert session.as_dict() == {"tokens": session.tokens, "cost_usd": session.cost_usd}
    unknown = UsageTotals("my-deployment")
    unknown.add(USAGE)
    assert unknown.cost_usd is None and unknown.tokens["input_cached_audio"] == 384


# --- price files -------------------------------------------------------------------------


def test_a_price_file_overrides_adds_and_aliases(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text("gpt-realtime:\n  output_audio: 60\nmy-deployment: gpt-realtime-mini\n"
                    "custom:\n  input_text: 1\n  output_text: 2\ngpt-realtime-mini-2025-10-06: null\n")
    table = load_prices(file)
    realtime = table["gpt-realtime"]
    assert realtime is not None and realtime.output_audio == 60.0 and realtime.input_audio == 32.0
    assert table["my-deployment"] == PRICES["gpt-realtime-mini"]
    assert estimate({"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "custom", table) == 3.0
    assert estimate(USAGE, "custom", table) is None  # no audio price given
    assert table["gpt-realtime-mini-2025-10-06"] is None
    assert PRICES["gpt-realtime"] is not None and PRICES["gpt-realtime"].output_audio == 64.0  # untouched


def test_a_json_price_file(tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    file.write_text('{"gpt-realtime": {"input_text": 3.5}}')
    realtime = load_prices(file)["gpt-realtime"]
    assert realtime is not None and realtime.input_text == 3.5


@pytest.mark.parametrize(("text", "error"), [
    ("", r"^{f}: a price file maps model names to prices \(USD per 1M tokens of each kind: input_text, "),
    ("- gpt-realtime\n", r"^{f}:1: a price file maps model names"),
    ("gpt-realtime:\n  input_txt: 3\n",
     (r"^{f}:2: \$\.gpt-realtime\.input_txt: unknown price kind 'input_txt' \(did you mean 'input_text'\?\);"
     r" kinds: input_text, ")),
    ("gpt-realtime:\n  output_audio: cheap\n",
     r"^{f}:2: \$\.gpt-realtime\.output_audio: must be a number of USD per 1M tokens, 0 or more, not 'cheap'$"),
    ("gpt-realtime:\n  output_audio: -1\n", r"^{f}:2: \$\.gpt-realtime\.output_audio: must be .* not -1$"),
    ("gpt-realtime:\n  output_audio: .inf\n", r"^{f}:2: \$\.gpt-realtime\.output_audio: must be .* not inf$"),
    ("gpt-realtime:\n  output_audio: true\n", r"^{f}:2: \$\.gpt-realtime\.output_audio: must be .* not True$"),
    ("mine: gpt-realtme\n",
     r"^{f}:1: \$\.mine: no price known for 'gpt-realtme' to price 'mine' like \(did you mean 'gpt-realtime'\?\)$"),
    ("mine: [1, 2]\n", r"^{f}:1: \$\.mine: expected a mapping of price kinds .* or null; not list$"),
    ("gpt-realtime: {\n", r"^{f}:\d+: YAML syntax error: "),
])
def test_a_bad_price_file_is_one_line_naming_file_and_key(tmp_path: Path, text: str, error: str) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_prices(file)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(error.replace("{f}", re.escape(str(file))), message), message


def test_a_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read file: No such file"):
        load_prices(tmp_path / "nowhere.yaml")



def test_the_table_of_docs_usage_md_is_the_built_in_one() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    assert f"as of {AS_OF} (`realtalk.pricing.AS_OF`)" in page
    header = "| model | text in | cached text in | text out | audio in | cached audio in | audio out | image in |"
    table = page.split(header, 1)[1].split("\n\n", 1)[0]
    order = ("input_text", "input_cached_text", "output_text", "input_audio", "input_cached_audio", "output_audio",
             "input_image", "input_cached_image")
    shown: dict[str, Price | None] = {}
    for row in (line for line in table.splitlines() if line.startswith("| gpt")):
        models, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        if set(cells) == {"?"}:
            price = None
        else:
            price = Price(**{kind: None if cell in ("–", "?") else float(cell) for kind, cell in zip(order, cells)})
        for model in models.split(", "):
            shown[model] = price
    assert shown == dict(PRICES)
