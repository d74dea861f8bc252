"""One vocabulary: the label keys and kinds are written in ``orchestrators/labels.py`` only."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrators import labels as L

ROOT = Path(__file__).resolve().parents[2]
# Shipped code and the code the tests and benchmarks run on (tests themselves may spell the
# keys out: they check what a user sees on the engine).
SOURCES = ("agent_platform", "orchestrators", "clients", "testenv", "benchmarks")


def test_no_label_key_is_spelled_outside_labels_py() -> None:
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "orchestrators" / "labels.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if L.SYSTEM_PREFIX in line
    ]
    assert spelled == []


def test_no_object_kind_is_a_bare_string() -> None:
    kinds = "|".join(re.escape(kind.value) for kind in L.Kind)
    bare = re.compile(rf"kind=\"({kinds})\"|, \"({kinds})\"\)")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("orchestrators", "agent_platform")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert found == []


def test_the_keys_sit_under_the_platforms_prefixes() -> None:
    keys = [value for name, value in vars(L).items() if name.isupper() and isinstance(value, str)]
    keys = [k for k in keys if "/" in k]
    assert keys
    for key in keys:
        assert key.startswith((L.SYSTEM_PREFIX, L.USER_PREFIX)), key
    assert L.USER_PREFIX.endswith(L.SYSTEM_PREFIX)  # a user label never is a system one
