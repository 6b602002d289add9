"""The catalog: every repository in storage, in lexical order by path component."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registryd.registry import layout
from registryd.registry.tags import checkPageSize, page
from registryd.storage.interfaces import SKIP_DIR, IFileInfo, PathNotFound

if TYPE_CHECKING:
    from registryd.registry.core import Registry


def _order(name: str) -> list[str]:
    """Sort key: component by component, so "a/b" comes before "a-b" as distribution lists them."""
    return name.split("/")


class _PageFull(Exception):
    """Raised by the catalog's visitor to end a walk once a page is full."""


async def repositoryNames(
    registry: Registry, after: str | None = None, limit: int | None = None
) -> list[str]:
    """
    The directories under C{repositories/} holding C{_manifests}, sorted by path component: all of
    them, or the first C{limit} of those sorting after C{after}.

    With C{after}, subtrees that sort wholly before it are not entered; with C{limit}, the walk
    (depth first in lexical order) stops once that many names are found, so paging through a
    large catalog reads each part of the tree about once instead of once per page.
    """
    prefix = layout.REPOSITORIES + "/"
    start = None if after is None else _order(after)
    names: list[str] = []
    current = [""]  # the directory the walk is in when it stops

    def visit(info: IFileInfo) -> object:
        if not info.isDir:
            return None
        parent, _, base = info.path.rpartition("/")
        if base == "_manifests":
            if parent.startswith(prefix):
                name = parent[len(prefix) :]
                if start is None or _order(name) > start:
                    names.append(name)
                    if limit is not None and len(names) >= limit:
                        current[0] = name
                        raise _PageFull()
            return SKIP_DIR
        # _layers, _uploads and the like are repository data, never names.
        if base.startswith("_"):
            return SKIP_DIR
        if start is not None and info.path.startswith(prefix):
            components = _order(info.path[len(prefix) :])
            if components < start[: len(components)]:
                return SKIP_DIR  # every repository below sorts before the page
        return None

    try:
        await registry.driver.walk(layout.REPOSITORIES, visit)
    except PathNotFound:
        return []
    except _PageFull:
        # In lexical order a repository's own _manifests may come after its nested repositories
        # ("a/0b" before "a/_manifests"), so the enclosing repositories not reached yet sort
        # before what was found: look for them.
        components = current[0].split("/")
        for depth in range(1, len(components)):
            name = "/".join(components[:depth])
            if (start is None or _order(name) > start) and name not in names:
                if await layout.exists(registry.driver, f"{prefix}{name}/_manifests"):
                    names.append(name)
    return sorted(names, key=_order)


async def catalog(registry: Registry, n: int | None, last: str | None) -> tuple[list[str], bool]:
    """A page of repository names after last. L{PaginationNumberInvalid} for a bad n."""
    checkPageSize(n)
    if n == 0:
        return page([], n)
    # One name more than the page tells whether another page follows.
    names = await repositoryNames(registry, last, None if n is None else n + 1)
    return page(names, n)
