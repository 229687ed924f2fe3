"""Does a backend's capabilities satisfy a volume type's extra specs? (Cinder's filter.)

Supports Cinder's operators: `<is> True`, `<in> word`, `<or> a <or> b`, `==`, `!=`, `>=`,
`<=`, `s==`, `s!=`; a plain value must equal the capability as a string. Keys with a scope
other than `capabilities:` (e.g. `qos:`) are not about placement and are skipped.
"""

from __future__ import annotations

from typing import Any


def unmatched_specs(extra_specs: dict[str, Any], capabilities: dict[str, Any]) -> list[str]:
    """The extra specs the backend does not satisfy, as readable `key=want (has have)`."""
    misses = []
    for key, want in extra_specs.items():
        scope, _, name = key.rpartition(":")
        if scope and scope != "capabilities":
            continue
        if name == "multiattach":
            continue  # a property of the volume, not of the placement
        have = capabilities.get(name)
        if not _matches(str(want).strip(), have):
            misses.append(f"{key}={want} (backend has {have!r})")
    return misses


def _matches(want: str, have: Any) -> bool:
    if have is None:
        return False
    words = want.split()
    if len(words) >= 2 and words[0].startswith("<") and words[0].endswith(">"):
        op, rest = words[0], " ".join(words[1:])
        if op == "<is>":
            return str(have).lower() == rest.lower()
        if op == "<in>":
            return rest in str(have)
        if op == "<or>":
            return str(have) in [part.strip() for part in want.split("<or>") if part.strip()]
        return False
    if len(words) == 2 and words[0] in ("==", "!=", ">=", "<=", "s==", "s!="):
        op, value = words
        if op in ("s==", "s!="):
            return (str(have) == value) == (op == "s==")
        try:
            have_n, value_n = float(have), float(value)
        except (TypeError, ValueError):
            return False
        return {"==": have_n == value_n, "!=": have_n != value_n,
                ">=": have_n >= value_n, "<=": have_n <= value_n}[op]
    if isinstance(have, bool):
        return str(have).lower() == want.lower()
    return str(have) == want
