"""The campaign manifest: one row per capture (id, files, tail, flight, date, free tags), read
from and written to CSV or YAML, and built from a directory tree or bucket prefix by a naming
pattern such as `{tail}/{date}/{flight}/*.pcapng`."""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import os
import re
from dataclasses import dataclass, field

from ..capture import source
from ..errors import SettingsError
from ..outputs import check_file_target, input_files
from ..store import atomic_write

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FIELDS = ("capture_id", "files", "tail", "flight", "date", "tags")


@dataclass(frozen=True)
class CaptureEntry:
    """One capture of a campaign. `files`: paths, globs or fsspec URLs (one capture, e.g. a
    rotated set); `tags`: free key=value pairs."""

    capture_id: str
    files: tuple[str, ...]
    tail: str = ""
    flight: str = ""
    date: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.match(self.capture_id):
            raise SettingsError(f"capture id {self.capture_id!r}: use letters, digits, '.', "
                                "'_' and '-' (it names a group in the store)")
        if not self.files:
            raise SettingsError(f"capture {self.capture_id}: no files")

    def to_dict(self) -> dict:
        return {"capture_id": self.capture_id, "files": list(self.files), "tail": self.tail,
                "flight": self.flight, "date": self.date, "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, d: dict) -> CaptureEntry:
        files = d.get("files")
        if isinstance(files, str):
            files = files.split()
        tags = d.get("tags") or {}
        if isinstance(tags, str):
            tags = _parse_tags(tags)
        unknown = set(d) - set(_FIELDS)
        if unknown:
            raise SettingsError(f"capture {d.get('capture_id')!r}: unknown fields "
                                f"{sorted(unknown)}; a row has {', '.join(_FIELDS)}")
        return cls(str(d.get("capture_id") or ""), tuple(str(f) for f in files or ()),
                   str(d.get("tail") or ""), str(d.get("flight") or ""),
                   str(d.get("date") or ""), {str(k): str(v) for k, v in tags.items()})


def _parse_tags(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(";"):
        if item.strip():
            k, sep, v = item.partition("=")
            if not sep:
                raise SettingsError(f"tag {item!r}: write tags as key=value;key=value")
            out[k.strip()] = v.strip()
    return out


def read_manifest(path: str | os.PathLike) -> list[CaptureEntry]:
    """CSV (columns capture_id, files [space-separated], tail, flight, date, tags
    [k=v;k=v]) or YAML (a list of mappings with the same keys, files a list). Relative paths
    and globs are relative to the manifest's own directory (so a manifest kept beside its
    archive means the same files wherever it is read from); they come back absolute."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SettingsError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    entries = parse_manifest(text, yaml=path.lower().endswith((".yaml", ".yml")), name=path)
    return absolute(entries, os.path.dirname(os.path.abspath(path)))


def absolute(entries: list[CaptureEntry], base: str) -> list[CaptureEntry]:
    """`entries` with their relative local paths and globs joined to `base`; URLs as they
    are. A campaign keeps only absolute paths: a relative one would name other files (or
    none) when a run starts in another directory."""
    def one(f: str) -> str:
        return f if source.is_url(f) else os.path.abspath(os.path.join(base,
                                                                       source.local_path(f)))
    return [dataclasses.replace(e, files=tuple(one(f) for f in e.files)) for e in entries]


def parse_manifest(text: str, yaml: bool, name: str = "manifest") -> list[CaptureEntry]:
    if yaml:
        import yaml as pyyaml

        try:
            doc = pyyaml.safe_load(text)
        except pyyaml.YAMLError as exc:
            raise SettingsError(f"{name}: not valid YAML ({exc})") from exc
        rows = doc.get("captures") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SettingsError(f"{name}: expected a list of captures (mappings with "
                                f"{', '.join(_FIELDS)})")
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "capture_id" not in reader.fieldnames \
                or "files" not in reader.fieldnames:
            raise SettingsError(f"{name}: a CSV manifest needs a header with at least "
                                "capture_id and files")
        rows = [{k: v for k, v in r.items() if k is not None} for r in reader]
    entries = [CaptureEntry.from_dict(r) for r in rows]
    seen: set[str] = set()
    for e in entries:
        if e.capture_id in seen:
            raise SettingsError(f"{name}: capture id {e.capture_id} appears twice")
        seen.add(e.capture_id)
    return entries


def manifest_text(entries: list[CaptureEntry], yaml: bool) -> str:
    if yaml:
        import yaml as pyyaml

        return pyyaml.safe_dump([e.to_dict() for e in entries], sort_keys=False)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(_FIELDS)
    for e in entries:
        w.writerow([e.capture_id, " ".join(e.files), e.tail, e.flight, e.date,
                    ";".join(f"{k}={v}" for k, v in e.tags.items())])
    return out.getvalue()


def write_manifest(path: str | os.PathLike, entries: list[CaptureEntry],
                   overwrite: bool = False) -> None:
    """Write the manifest whole or not at all, by outputs.py's rule: an existing file only
    with `overwrite`; never a directory, a link or one of the captures it lists."""
    inputs = input_files(f for e in entries for f in e.files)
    target = check_file_target(path, inputs=inputs, overwrite=overwrite, what="the manifest")
    text = manifest_text(entries, yaml=target.lower().endswith((".yaml", ".yml")))
    atomic_write(target, text.encode("utf-8"))


_PLACEHOLDER = re.compile(r"\{(tail|flight|date)\}")


def discover(root: str, pattern: str, storage: source.Storage | None = None
             ) -> list[CaptureEntry]:
    """Captures under `root` (a directory or a URL prefix) whose relative paths match
    `pattern`: `{tail}`, `{date}` and `{flight}` each match one path component (or part of
    one), the rest is a glob. Files that agree on the placeholders form one capture (a
    rotated set), with id `tail-date-flight`; local files by absolute path."""
    names = _PLACEHOLDER.findall(pattern)
    if not names:
        raise SettingsError(f"pattern {pattern!r} names none of {{tail}}, {{date}}, {{flight}}")
    if len(set(names)) != len(names):
        raise SettingsError(f"pattern {pattern!r} repeats a placeholder")
    as_glob = _PLACEHOLDER.sub("*", pattern)
    regex = re.compile("^" + "".join(
        f"(?P<{text}>[^/]+?)" if placeholder else _glob_regex(text)
        for placeholder, text in _tokens(pattern)) + "$")
    base = root.rstrip("/")
    if source.is_url(base):
        fs, path = source.filesystem(base, storage)
        with source.errors(base, "cannot be listed"):
            found = sorted(fs.glob(f"{path}/{as_glob}"))
        rel = [(f[len(path) + 1:], fs.unstrip_protocol(f)) for f in found]
    else:
        local = os.path.abspath(source.local_path(base))
        if not os.path.isdir(local):
            raise SettingsError(f"{root}: not a directory")
        found = sorted(glob.glob(os.path.join(local, as_glob)))
        rel = [(os.path.relpath(f, local).replace(os.sep, "/"), f) for f in found
               if os.path.isfile(f)]
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r, full in rel:
        m = regex.match(r)
        if m:
            d = m.groupdict()
            groups.setdefault((d.get("tail", ""), d.get("date", ""), d.get("flight", "")),
                              []).append(full)
    entries = []
    for (tail, date, flight), files in sorted(groups.items()):
        cid = "-".join(x for x in (tail, date, flight) if x)
        cid = re.sub(r"[^A-Za-z0-9._-]", "_", cid)
        entries.append(CaptureEntry(cid, tuple(files), tail, flight, date))
    return entries


def _tokens(pattern: str) -> list[tuple[bool, str]]:
    """(is a placeholder, its name or the glob text) in pattern order."""
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        if m.start() > pos:
            out.append((False, pattern[pos:m.start()]))
        out.append((True, m.group(1)))
        pos = m.end()
    if pos < len(pattern):
        out.append((False, pattern[pos:]))
    return out


def _glob_regex(text: str) -> str:
    """A glob fragment as a regex that does not cross '/' (like the glob that found it)."""
    out = []
    for ch in text:
        out.append({"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch)))
    return "".join(out)
