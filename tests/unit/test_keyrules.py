"""The key rule: what the project's own generators make passes, what is certainly weak does not."""

from __future__ import annotations

import secrets

import pytest

from agent_platform.keyrules import PLACEHOLDER_KEY, weakness


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_urlsafe(32),  # scripts/run.sh, create-key, the README
        lambda: secrets.token_urlsafe(24),  # the test suite's keys
        lambda: secrets.token_hex(16),  # openssl rand -hex 16
    ],
    ids=["token_urlsafe_32", "token_urlsafe_24", "hex_16"],
)
def test_generated_keys_pass(make: object) -> None:
    assert callable(make)
    for _ in range(2000):
        key = make()
        assert weakness(key) is None


@pytest.mark.parametrize(
    "key",
    [
        PLACEHOLDER_KEY,
        "change-me-" + secrets.token_urlsafe(32),
        "X" + "ChangeMe" + secrets.token_hex(16),
        "k" * 64,
        "abc" * 20,
        secrets.token_urlsafe(16),
        secrets.token_urlsafe(32)[:20] + " " + secrets.token_urlsafe(32),
    ],
    ids=[
        "placeholder",
        "change_me",
        "changeme_any_case",
        "one_char",
        "three_chars",
        "short",
        "space",
    ],
)
def test_weak_keys_are_refused_without_being_quoted(key: str) -> None:
    reason = weakness(key)
    assert reason is not None
    assert key not in reason
