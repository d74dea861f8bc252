"""What makes an API key too weak to accept.

A key must be at least ``MIN_KEY_LENGTH`` characters without whitespace, must not be a
placeholder (the ``.env.example`` value, or any key containing "change-me", "changeme",
"placeholder" or "example"), and must not be a few characters repeated: the entropy of its
character frequencies must reach ``MIN_BITS_PER_CHAR`` per character and, times its length,
``MIN_KEY_BITS`` in all. A random key passes
with a wide margin: ``secrets.token_urlsafe(24)`` (32 characters) scores about 145 bits,
``openssl rand -hex 16`` about 115 (2.79 bits a character at worst in a million draws),
``"k" * 32`` scores 0, ``"abc" * 20`` 1.6 bits a character.

The estimate cannot tell a random key from a long phrase a person made up; it refuses what is
certainly weak, and the README tells operators to generate keys.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

__all__ = [
    "MIN_BITS_PER_CHAR",
    "MIN_KEY_BITS",
    "MIN_KEY_LENGTH",
    "PLACEHOLDER_DIGESTS",
    "PLACEHOLDER_KEY",
    "weakness",
]

MIN_KEY_LENGTH = 32
MIN_KEY_BITS = 80
MIN_BITS_PER_CHAR = 2.5
PLACEHOLDER_KEY = "change-me-to-a-long-random-key"  # the value shipped in .env.example
_PLACEHOLDER_WORDS = ("change-me", "changeme", "placeholder", "example")
# Digests of keys that are public knowledge: a keys-file entry with one of them is refused.
PLACEHOLDER_DIGESTS = frozenset({hashlib.sha256(PLACEHOLDER_KEY.encode()).hexdigest()})
_GENERATE = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _bits_per_char(key: str) -> float:
    size = len(key)
    return -sum(n / size * math.log2(n / size) for n in Counter(key).values())


def weakness(key: str) -> str | None:
    """Why ``key`` is refused, or None. The reason never contains the key."""
    if any(c.isspace() for c in key):
        return "a key may not contain whitespace"
    lowered = key.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        return f"the key is a placeholder; {_GENERATE}"
    if len(key) < MIN_KEY_LENGTH:
        return f"a key must be at least {MIN_KEY_LENGTH} characters; {_GENERATE}"
    per_char = _bits_per_char(key)
    if per_char < MIN_BITS_PER_CHAR or per_char * len(key) < MIN_KEY_BITS:
        return f"the key is made of too few different characters to be random; {_GENERATE}"
    return None
