from __future__ import annotations

import io

from realtalk.cli.interactive import _meter, console_approver
from realtalk.session import ApprovalRequest

REQUEST = ApprovalRequest("transfer_money", {"amount": 50}, "front", "call_1")


async def test_console_approver_yes_and_no() -> None:
    prompts: list[str] = []

    def answer(text: str):  # type: ignore[no-untyped-def]
        def reader(prompt: str) -> str:
            prompts.append(prompt)
            return text
        return reader

    assert await console_approver(answer("y"))(REQUEST) is True
    assert await console_approver(answer("YES "))(REQUEST) is True
    assert await console_approver(answer(""))(REQUEST) is False
    assert await console_approver(answer("n"))(REQUEST) is False
    assert prompts[0] == 'approve transfer_money({"amount": 50}) for front? [y/N] '


async def test_console_approver_end_of_input_refuses() -> None:
    def closed(prompt: str) -> str:
        raise EOFError

    assert await console_approver(closed)(REQUEST) is False


def test_meter_scales_with_level() -> None:
    assert _meter(-100.0).count("#") == 0
    assert _meter(0.0).count("#") == 30
    assert 10 < _meter(-30.0).count("#") < 20
    assert io.StringIO(_meter(-6.0)).read().endswith("-6.0 dBFS")
