"""Log lines of realtalk serve (realtalk.serve.logs): one JSON object per line with the
session id inside a session, text for people, and secrets scrubbed whatever logged them."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from realtalk.serve import logs

SECRET = "serve-token-0123456789"


def test_json_lines_carry_the_session_id_and_never_a_secret() -> None:
    stream = io.StringIO()
    undo = logs.install("json", secrets=[SECRET, "mint-key-0123456789"], stream=stream)
    log = logging.getLogger("realtalk.serve.test")
    try:
        log.info("outside")

        async def in_session() -> None:
            logs.session_id.set("abc123")
            log.info("inside, token %s", SECRET)
            async def child() -> None:
                log.info("in a task")

            await asyncio.create_task(child())  # tasks started in a session inherit its id
            try:
                raise ValueError("bad key mint-key-0123456789\nsecond line")
            except ValueError:
                log.warning("failed", exc_info=True)

        asyncio.run(in_session())
        log.info("after")
    finally:
        undo()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["outside", "inside, token ***", "in a task", "failed", "after"]
    assert [line.get("session_id") for line in lines] == [None, "abc123", "abc123", "abc123", None]
    assert lines[3]["error"] == "ValueError: bad key ***\nsecond line"
    assert set(lines[0]) == {"ts", "level", "logger", "message"}
    assert (lines[0]["level"], lines[0]["logger"]) == ("info", "realtalk.serve.test")
    assert lines[0]["ts"].endswith("Z")
    assert SECRET not in stream.getvalue()
    assert "mint-key-0123456789" not in stream.getvalue()


def test_text_lines_for_people() -> None:
    stream = io.StringIO()
    undo = logs.install("text", secrets=[SECRET], stream=stream)
    try:
        token = logs.session_id.set("s1")
        logging.getLogger("realtalk.serve.test").warning("two\nlines %s", SECRET)
        logs.session_id.reset(token)
    finally:
        undo()
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" warning [s1] realtalk.serve.test: two lines ***")


def test_a_token_in_a_url_is_scrubbed_even_when_no_configuration_lists_it() -> None:
    # A minted token in the page's address (/?token=...) reaches uvicorn's access log.
    stream = io.StringIO()
    undo = logs.install("json", stream=stream)
    try:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/?agent=billing&token=rt1.99.abc.sig", "1.1", 200)
        logging.getLogger("realtalk.serve.test").info("see /ws?TOKEN=secret-value;x=1")
    finally:
        undo()
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == ['127.0.0.1:5000 - "GET /?agent=billing&token=*** HTTP/1.1" 200',
                     "see /ws?TOKEN=***;x=1"]
