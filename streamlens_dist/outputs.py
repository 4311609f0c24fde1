"""The rule every writer follows before it writes, replaces or deletes a path: only our own
outputs are ever replaced (result stores: store.py; HTML reports, generated captures and
manifests: here), never an input of the run, never a file or directory of the user's.

Paths are compared resolved (symbolic links and `..` followed; URLs with their protocol), so
`-o ./x/../cap.pcap` is the capture `cap.pcap`, and a target that holds an input (a store
directory with a capture inside it) counts as that input.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable, Iterable

from .capture import source
from .errors import OutputRefusedError, StorageError, StoreExistsError


def resolved(path: str | os.PathLike, storage: source.Storage | None = None) -> str:
    """The path with links and `..` resolved, or the URL as its filesystem names it."""
    path = os.fspath(path)
    if source.is_url(path):
        fs, root = source.filesystem(path, storage, StorageError)
        return fs.unstrip_protocol(root.rstrip("/"))
    return os.path.realpath(source.local_path(path))


def input_files(paths: Iterable[str | os.PathLike], storage: source.Storage | None = None
                ) -> list[str]:
    """The resolved files that `paths` (files, globs, URLs) name now; local globs are
    expanded, URL globs only by their fixed prefix (listing an archive just to compare names
    would cost a round trip per run): a URL target under that prefix counts as an input."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if source.is_url(p):
            fixed = p.split("*")[0].split("?")[0].split("[")[0]
            with contextlib.suppress(StorageError):
                out.append(resolved(fixed if fixed != p else p, storage))
            continue
        local = source.local_path(p)
        names = sorted(glob.glob(local)) if glob.has_magic(local) and not os.path.lexists(local) \
            else [local]
        out.extend(os.path.realpath(n) for n in names)
    return out


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def check_not_input(target: str, inputs: Iterable[str], what: str) -> None:
    """Refuse a resolved `target` that is one of the resolved `inputs` or holds one."""
    for name in inputs:
        if _within(name, target):
            holds = "is" if name == target else f"holds {name}, which is"
            raise OutputRefusedError(f"{target} {holds} an input of this run; refusing to "
                                     f"write {what} there: choose another path")


def check_apart(a: str, b: str, what_a: str, what_b: str) -> None:
    """Refuse two resolved output locations of which one is, or is inside, the other."""
    if _within(a, b) or _within(b, a):
        raise OutputRefusedError(f"{what_a} {a} and {what_b} {b} overlap; give them separate "
                                 "paths")


def check_file_target(path: str | os.PathLike, *, inputs: Iterable[str] = (),
                      overwrite: bool = False, ours: Callable[[str], bool] | None = None,
                      what: str = "the file") -> str:
    """Where a single output file may be written: not an input, not a directory or a link;
    an existing file is replaced only when `ours(path)` says we wrote it or, without such a
    test, with `overwrite`. Returns the resolved path; raises OutputRefusedError or
    StoreExistsError with a one-line message naming the path."""
    path = os.fspath(path)
    target = resolved(path)
    check_not_input(target, inputs, what)
    local = source.local_path(path)
    if os.path.islink(local):
        raise OutputRefusedError(f"{path} is a symbolic link; refusing to write {what} over "
                                 "it: give the file's own path")
    if os.path.isdir(local):
        raise OutputRefusedError(f"cannot write {path}: it is a directory; give a file name "
                                 f"for {what}")
    if not os.path.lexists(local):
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            raise OutputRefusedError(f"cannot write {path}: directory {parent} does not exist")
        return target
    if not os.path.isfile(local):
        raise OutputRefusedError(f"{path} is not a regular file; refusing to write {what} there")
    if ours is not None:
        if not ours(local):
            raise OutputRefusedError(f"{path} exists and was not written by streamlens-dist; "
                                     f"refusing to replace it with {what}: choose another path")
    elif not overwrite:
        raise StoreExistsError(f"{path} already exists; pass --overwrite to replace it, or "
                               "choose another path")
    return target
