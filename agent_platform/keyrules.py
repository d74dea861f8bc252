"""What makes an API key too weak to accept.

A key must be at least ``MIN_KEY_LENGTH`` characters without whitespace, must not be a
placeholder (the ``.env.example`` value, or any key containing "change-me", "changeme",
"placeholder" or "example"), and must not be a few characters repeated: the entropy of its
character frequencies, times its length, must reach ``MIN_KEY_BITS``. A random key passes
with a wide margin: ``secrets.token_urlsafe(24)`` (32 characters) scores about 145 bits,
``openssl rand -hex 16`` about 115, ``"k" * 32`` scores 0 and ``"abab..."`` 32.

The estimate cannot tell a random key from a long phrase a person made up; it refuses what is
certainly weak, and the README tells operators to generate keys.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

__all__ = ["MIN_KEY_BITS", "MIN_KEY_LENGTH", "PLACEHOLDER_KEY", "PLACEHOLDER_DIGESTS", "weakness"]

MIN_KEY_LENGTH = 32
MIN_KEY_BITS = 80
PLACEHOLDER_KEY = "change-me-to-a-long-random-key"  # the value shipped in .env.example
_PLACEHOLDER_WORDS = ("change-me", "changeme", "placeholder", "example")
# Digests of keys that are public knowledge: a keys-file entry with one of them is refused.
PLACEHOLDER_DIGESTS = frozenset({hashlib.sha256(PLACEHOLDER_KEY.encode()).hexdigest()})
_GENERATE = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _estimated_bits(key: str) -> float:
    counts = Counter(key)
    size = len(key)
    per_char = -sum(n / size * math.log2(n / size) for n in counts.values())
    return per_char * size


def weakness(key: str) -> str | None:
    """Why ``key`` is refused, or None. The reason never contains the key."""
    if any(c.isspace() for c in key):
        return "a key may not contain whitespace"
    lowered = key.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        return f"the key is a placeholder; {_GENERATE}"
    if len(key) < MIN_KEY_LENGTH:
        return f"a key must be at least {MIN_KEY_LENGTH} characters; {_GENERATE}"
    if _estimated_bits(key) < MIN_KEY_BITS:
        return f"the key is made of too few different characters to be random; {_GENERATE}"
    return None
