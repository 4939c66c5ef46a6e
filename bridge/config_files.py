"""The `[files]` table: whether visitors and agents may send files, how large, which kinds
(found by content), and how many per conversation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.config_reader import Reader
from bridge.core.files import KNOWN_TYPES, RASTER

DEFAULT_TYPES = frozenset(RASTER | {"application/pdf", "text/plain"})
MIB = 1024 * 1024


@dataclass(frozen=True)
class FilesConfig:
    enabled: bool = True
    max_bytes: int = 10 * MIB  # per file, both ways
    types: frozenset[str] = DEFAULT_TYPES  # what visitors may send, by content
    per_hour: int = 20  # files per conversation per hour from the visitor; 0: no limit


def _max_bytes(value: int) -> str | None:
    if not 1 <= value <= 1024 * MIB:
        return f"{value} is out of range (expected bytes from 1 to 1073741824)"
    return None


def _count(value: int) -> str | None:
    return None if value >= 0 else f"{value} is negative (expected an integer >= 0)"


def parse_files(r: Reader, t: dict[str, Any]) -> FilesConfig:
    p = "files"
    r.unknown_keys(t, {"enabled", "max_bytes", "types", "per_hour"}, p)
    defaults = FilesConfig()
    types = r.get(t, "types", p, list, sorted(defaults.types))
    for i, name in enumerate(types):
        if name not in KNOWN_TYPES:
            r.fail(f"{p}.types[{i}]", f"{name!r} is not a type the bridge recognises "
                   f"(expected one of {', '.join(sorted(KNOWN_TYPES))})")
    return FilesConfig(
        enabled=r.get(t, "enabled", p, bool, defaults.enabled),
        max_bytes=r.get(t, "max_bytes", p, int, defaults.max_bytes, check=_max_bytes),
        types=frozenset(name for name in types if name in KNOWN_TYPES),
        per_hour=r.get(t, "per_hour", p, int, defaults.per_hour, check=_count),
    )
