"""Read a user's IENA key map (docs/STREAMS.md §6): CSV with `key,type[,name]` columns, or a
YAML mapping `{key: type}` / `{key: {type: T, name: N}}`, as test-instrumentation
configuration tools export them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import SettingsError
from .settings import IENA_TYPES


def _key(value: object, where: str) -> int:
    try:
        key = value if isinstance(value, int) else int(str(value).strip(), 0)
    except ValueError:
        raise SettingsError(f"{where}: IENA key {value!r} is not a number (decimal or 0x hex)") \
            from None
    if not 0 <= key <= 0xFFFF:
        raise SettingsError(f"{where}: IENA key {key} is outside 0..65535")
    return key


def _type(value: object, where: str) -> str:
    t = str(value).strip().upper().removeprefix("IENA-")
    if t not in IENA_TYPES:
        raise SettingsError(f"{where}: IENA packet type {value!r} is not one of "
                            f"{', '.join(IENA_TYPES)}")
    return t


def load_key_map(path: str | Path) -> tuple[tuple[int, str, str], ...]:
    """(key, type, name) triples, sorted by key; a clear SettingsError for a bad file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the IENA key map {path}: {exc}") from exc
    if str(path).lower().endswith((".yaml", ".yml")):
        entries = _from_yaml(text, str(path))
    else:
        entries = _from_csv(text, str(path))
    seen: dict[int, tuple[int, str, str]] = {}
    for key, ptype, name in entries:
        if key in seen and seen[key][1] != ptype:
            raise SettingsError(f"{path}: IENA key 0x{key:04x} is declared twice with different "
                                "types")
        seen[key] = (key, ptype, name)
    if not seen:
        raise SettingsError(f"{path}: the IENA key map declares no keys")
    return tuple(seen[k] for k in sorted(seen))


def _from_csv(text: str, path: str) -> list[tuple[int, str, str]]:
    rows = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in rows.fieldnames or ()}
    if "key" not in fields or "type" not in fields:
        raise SettingsError(f"{path}: a CSV key map needs a header row with `key` and `type` "
                            "columns (and optionally `name`)")
    out = []
    for n, row in enumerate(rows, start=2):
        where = f"{path} line {n}"
        name = (row.get(fields["name"]) or "").strip() if "name" in fields else ""
        out.append((_key(row[fields["key"]], where), _type(row[fields["type"]], where), name))
    return out


def _from_yaml(text: str, path: str) -> list[tuple[int, str, str]]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise SettingsError(f"{path}: a YAML key map is a mapping of key -> type")
    out = []
    for key, value in doc.items():
        where = f"{path} key {key!r}"
        if isinstance(value, dict):
            out.append((_key(key, where), _type(value.get("type"), where),
                        str(value.get("name") or "")))
        else:
            out.append((_key(key, where), _type(value, where), ""))
    return out
