"""Every example in docs/audio.md runs, against the fake sound card."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "audio.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_example_runs(code: str, fake_alsa, speech_wav: Path) -> None:  # type: ignore[no-untyped-def]
    work = fake_alsa.root / "work"
    work.mkdir()
    shutil.copy(speech_wav, work / "question.wav")
    # The microphone example reads the fake card's infile: give it a few seconds.
    fake_alsa.infile.write_bytes(bytes(44100 * 2 * 5))
    script = f"import os, json\nos.chdir({str(work)!r})\n{code}\nprint(json.dumps({{}}))\n"
    fake_alsa.run(script)


def test_devices_listing_matches_the_page(fake_alsa) -> None:  # type: ignore[no-untyped-def]
    text = DOC.read_text()
    block = text.split("$ realtalk devices\n", 1)[1].split("```", 1)[0]
    proc = fake_alsa.run_raw("from realtalk.audio import devices_command; devices_command()")
    assert proc.stdout == block
