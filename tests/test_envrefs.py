"""${NAME} references: expansion, defaults, escapes, malformed ones, and redaction."""

from __future__ import annotations

import pytest
from realtalk.envrefs import (
    REDACTED,
    MissingEnv,
    env_names,
    expand,
    names_without_default,
    redact,
    reference_problem,
    unset_names,
)


def test_expand_replaces_references_and_reports_the_secrets_used() -> None:
    done = expand("Bearer ${KEY} at ${HOST:-api.example.com}", {"KEY": "s3cret-key"})
    assert done.value == "Bearer s3cret-key at api.example.com"
    assert done.secrets == ("s3cret-key",)


def test_a_default_is_not_a_secret_and_an_escape_is_literal() -> None:
    done = expand("$${KEY} ${HOST:-h}", {})
    assert done.value == "${KEY} h"
    assert done.secrets == ()


def test_an_unset_or_empty_variable_without_default_is_named() -> None:
    with pytest.raises(MissingEnv, match="environment variable WEATHER_KEY is not set") as caught:
        expand("x=${WEATHER_KEY}", {"WEATHER_KEY": ""})
    assert caught.value.name == "WEATHER_KEY"


def test_names_in_order_without_repeats() -> None:
    assert env_names("${A}/${B:-x}/${A}") == ["A", "B"]
    assert names_without_default("${A}/${B:-x}/${A}") == ["A"]


@pytest.mark.parametrize("text", ["${bad name}", "${}", "${1X}", "tail ${OPEN"])
def test_malformed_references_are_refused(text: str) -> None:
    problem = reference_problem(text)
    assert problem is not None and "malformed reference" in problem


def test_well_formed_references_pass() -> None:
    assert reference_problem("https://x/${A}?k=${B:-1}&e=$${C}") is None


def test_redact_hides_plain_and_url_encoded_forms() -> None:
    secret = "k3y/with space&more"
    text = f"raw {secret} path k3y%2Fwith%20space%26more form k3y%2Fwith+space%26more"
    cleaned = redact(text, [secret])
    assert secret not in cleaned and "k3y" not in cleaned
    assert cleaned.count(REDACTED) == 3


def test_redact_leaves_tiny_values_alone() -> None:
    assert redact("a 1 b", ["1"]) == "a 1 b"


def test_unset_names_are_the_needed_ones_unset_or_empty() -> None:
    assert unset_names("${A} ${B} ${C:-x} ${D}", {"A": "1", "B": "", "D": "ok"}) == ["B"]
