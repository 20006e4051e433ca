"""Who may start a session (realtalk.serve.access), with plain values: every refusal,
tokens static and minted (with an injected clock), origins, capacity, release; and the
config's one-line errors (realtalk.serve.config)."""

from __future__ import annotations

from pathlib import Path

import pytest
from realtalk.exceptions import ConfigError
from realtalk.serve.access import AccessPolicy, Refused, TokenMinter, bearer
from realtalk.serve.config import ServeConfig, normal_origin, secrets_from_env

HOST = "serve.example:8080"
ORIGIN = "http://serve.example:8080"
SECRET = "token-secret-0123456789"


def admit(policy: AccessPolicy, *, client: str = "10.0.0.1", token: str | None = None,
          origin: str | None = ORIGIN, host: str | None = HOST, kind: str = "browser",
          draining: bool = False) -> object:
    return policy.admit(client=client, token=token, origin=origin, host=host, kind=kind, draining=draining)


def refusal(policy: AccessPolicy, **how: object) -> tuple[int, str, str]:
    with pytest.raises(Refused) as caught:
        admit(policy, **how)  # type: ignore[arg-type]
    return caught.value.status, caught.value.code, caught.value.reason


def test_draining_refuses_everyone_first() -> None:
    policy = AccessPolicy(tokens=["t"])
    assert refusal(policy, draining=True, token="wrong")[:2] == (503, "draining")
    assert refusal(policy, draining=True, kind="phone")[:2] == (503, "draining")


def test_origins() -> None:
    policy = AccessPolicy()
    admit(policy)  # the server's own host
    admit(policy, origin="http://SERVE.example:8080")
    admit(policy, origin=None)  # no Origin: not a browser
    admit(policy, origin="https://serve.example", host="serve.example")  # default port on both sides
    status, code, reason = refusal(policy, origin="http://serve.example:9999")
    assert (status, code) == (403, "forbidden_origin")
    assert "--allow-origin" in reason
    assert refusal(policy, origin="null")[:2] == (403, "forbidden_origin")
    assert refusal(policy, origin="https://evil.example\n")[2].count("\n") == 0
    assert refusal(policy, origin=ORIGIN, host=None)[1] == "forbidden_origin"
    allowed = AccessPolicy(allow_origins=["https://app.example"])
    admit(allowed, origin="https://app.example:443")
    assert refusal(allowed, origin="https://other.example")[1] == "forbidden_origin"
    admit(AccessPolicy(allow_origins=["*"]), origin="https://anyone.example")
    admit(policy, origin="https://evil.example", kind="phone")  # phones are no pages


def test_static_tokens() -> None:
    policy = AccessPolicy(tokens=["first-token", "second-token"])
    admit(policy, token="second-token")
    assert refusal(policy) == (401, "unauthorized", "this server needs a token; none was given")
    assert refusal(policy, token="second-tokeN") == (401, "unauthorized", "invalid token")
    admit(policy, kind="phone")  # a phone's transport authenticates it
    admit(AccessPolicy())  # no tokens configured: none needed


def test_minted_tokens_expire_and_cannot_be_forged() -> None:
    now = [1000.0]
    minter = TokenMinter(SECRET, ttl_s=60, clock=lambda: now[0])
    policy = AccessPolicy(minter=minter)
    token, expires = minter.mint()
    assert expires == 1060
    assert token.startswith("rt1.1060.")
    assert minter.mint()[0] != token
    admit(policy, token=token)
    body, _, signature = token.rpartition(".")
    assert refusal(policy, token=f"{body}.{signature[::-1]}")[2] == "invalid token"
    assert refusal(policy, token=token.replace("rt1.1060.", "rt1.9999."))[2] == "invalid token"
    other = TokenMinter("another-secret-0123456789", clock=lambda: now[0]).mint()[0]
    assert refusal(policy, token=other)[2] == "invalid token"
    assert refusal(policy, token="rt1.x.y")[2] == "invalid token"
    now[0] = 1060.0
    status, code, reason = refusal(policy, token=token)
    assert (status, code) == (401, "unauthorized")
    assert "expired" in reason
    assert token not in reason


def test_capacity_counts_and_release() -> None:
    policy = AccessPolicy(max_sessions=3, max_per_client=2)
    a = admit(policy, client="a")
    admit(policy, client="a")
    status, code, reason = refusal(policy, client="a")
    assert (status, code) == (429, "client_capacity")
    assert "2 at most" in reason
    admit(policy, client="b")
    assert refusal(policy, client="c")[:2] == (429, "capacity")
    assert (len(policy.active), policy.per_client) == (3, {"a": 2, "b": 1})
    policy.release(a)  # type: ignore[arg-type]
    policy.release(a)  # type: ignore[arg-type]  # idempotent
    assert (len(policy.active), policy.per_client) == (2, {"a": 1, "b": 1})
    admit(policy, client="c")
    assert refusal(policy, client="c", kind="phone")[1] == "capacity"


def test_mint_key_and_bearer() -> None:
    policy = AccessPolicy(minter=TokenMinter(SECRET))
    assert policy.mint_allowed("Bearer mint-key-0123456789", "mint-key-0123456789")
    assert policy.mint_allowed("bearer   mint-key-0123456789 ", "mint-key-0123456789")
    assert not policy.mint_allowed("Bearer mint-key-012345678", "mint-key-0123456789")
    assert not policy.mint_allowed(None, "mint-key-0123456789")
    assert not policy.mint_allowed("Basic mint-key-0123456789", "mint-key-0123456789")
    assert not AccessPolicy().mint_allowed("Bearer k", "k")  # no minter: nothing to mint
    assert bearer("Bearer abc") == "abc"
    assert bearer("Bearer ") is None
    assert bearer("Token abc") is None


def test_normal_origin() -> None:
    assert normal_origin("HTTPS://App.Example:443") == "https://app.example"
    assert normal_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normal_origin("ws://app.example") is None
    assert normal_origin("https://app.example/path") is None
    assert normal_origin("https://app.example:99999") is None


def config(tmp_path: Path, **fields: object) -> ServeConfig:
    return ServeConfig(agents=tmp_path, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "message"), [
    ({"max_sessions": 0}, "--max-sessions must be at least 1, not 0"),
    ({"max_per_client": 0}, "--max-per-client must be at least 1, not 0"),
    ({"workers": 0}, "--workers must be at least 1, not 0"),
    ({"port": 70000}, "--port must be a port number from 0 to 65535, not 70000"),
    ({"max_session_s": 0.0}, "--max-session-s must be a number of seconds above 0, not 0.0"),
    ({"drain_s": float("nan")}, "--drain-s must be a number of seconds above 0, not nan"),
    ({"scenario": Path("s.yaml")}, "--scenario needs --emulator"),
    ({"emulator": True, "url": "ws://x"}, "--emulator cannot be combined with --url or --azure"),
    ({"log_format": "xml"}, "--log-format must be json or text, not 'xml'"),
    ({"allow_origins": ("app.example",)}, "--allow-origin: not an origin: 'app.example'"),
    ({"public_url": "ftp://x"}, "--public-url: not an http(s) URL: 'ftp://x'"),
    ({"token_secret": "short", "mint_key": "mint-key-0123456789"}, "REALTALK_SERVE_TOKEN_SECRET must be at least 16"),
    ({"token_secret": SECRET, "mint_key": "short"}, "REALTALK_SERVE_MINT_KEY must be at least 16"),
    ({"token_secret": SECRET}, "minted tokens need both REALTALK_SERVE_TOKEN_SECRET and REALTALK_SERVE_MINT_KEY"),
    ({"tokens": ("a b",)}, "REALTALK_SERVE_TOKENS: a token is empty or holds spaces or commas"),
])
def test_config_errors_name_the_flag(tmp_path: Path, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, **fields).check()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    for secret in (SECRET, "mint-key-0123456789"):
        assert secret not in str(caught.value)


def test_record_dir_is_created_or_refused(tmp_path: Path) -> None:
    config(tmp_path, record_dir=tmp_path / "a" / "b").check()
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--record-dir: cannot create"):
        config(tmp_path, record_dir=tmp_path / "file" / "x").check()


def test_secrets_come_from_the_environment_and_never_show() -> None:
    env = {"REALTALK_SERVE_TOKEN": "one-token", "REALTALK_SERVE_TOKENS": "two-token, three-token,",
           "REALTALK_SERVE_TOKEN_SECRET": SECRET, "REALTALK_SERVE_MINT_KEY": "", "REALTALK_TWILIO_AUTH_TOKEN": "tw"}
    found = secrets_from_env(env)
    assert found == {"tokens": ("one-token", "two-token", "three-token"), "token_secret": SECRET,
                     "mint_key": None, "twilio_auth_token": "tw"}
    shown = repr(ServeConfig(agents=Path("agents"), **found))  # type: ignore[arg-type]
    for secret in ("one-token", "two-token", SECRET, "'tw'"):
        assert secret not in shown
