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


async def repositoryNames(registry: Registry) -> list[str]:
    """Every directory under C{repositories/} holding C{_manifests}, sorted by path component."""
    prefix = layout.REPOSITORIES + "/"
    names: list[str] = []

    def visit(info: IFileInfo) -> object:
        if not info.isDir:
            return None
        parent, _, base = info.path.rpartition("/")
        if base == "_manifests":
            if parent.startswith(prefix):
                names.append(parent[len(prefix) :])
            return SKIP_DIR
        # _layers, _uploads and the like are repository data, never names.
        if base.startswith("_"):
            return SKIP_DIR
        return None

    try:
        await registry.driver.walk(layout.REPOSITORIES, visit)
    except PathNotFound:
        return []
    return sorted(names, key=_order)


async def catalog(registry: Registry, n: int | None, last: str | None) -> tuple[list[str], bool]:
    """A page of repository names after last. L{PaginationNumberInvalid} for a bad n."""
    checkPageSize(n)
    names = await repositoryNames(registry)
    if last is not None:
        after = _order(last)
        names = [name for name in names if _order(name) > after]
    return page(names, n)
