"""The tags of a repository, and the paging shared with the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from registryd.registry import layout
from registryd.registry.errors import NameUnknown, PaginationNumberInvalid
from registryd.storage.interfaces import PathNotFound

if TYPE_CHECKING:
    from registryd.registry.core import Registry

T = TypeVar("T")


def checkPageSize(n: int | None) -> None:
    """Raise L{PaginationNumberInvalid} unless n is None or a non-negative integer."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise PaginationNumberInvalid(detail={"n": n})


def page(items: Sequence[T], n: int | None) -> tuple[list[T], bool]:
    """The first n of items (all of them without n), and whether more follow. L{PaginationNumberInvalid}."""
    checkPageSize(n)
    if n is None:
        return list(items), False
    if n == 0:
        return [], False
    return list(items[:n]), len(items) > n


async def listTags(registry: Registry, name: str, n: int | None, last: str | None) -> tuple[list[str], bool]:
    """
    A page of the repository's tags in lexical order, after last.

    L{NameUnknown} when the repository holds no manifests or blobs (nothing, or only
    uploads in progress), as distribution answers. A repository whose tags were all
    deleted lists none: object stores drop the emptied tags directory, distribution's
    filesystem keeps it, and either way the answer is an empty list.
    """
    checkPageSize(n)
    driver = registry.driver
    try:
        children = await driver.list(layout.tagsPath(name))
    except PathNotFound:
        if not (
            await layout.exists(driver, layout.manifestsPath(name))
            or await layout.exists(driver, layout.layersPath(name))
        ):
            raise NameUnknown(detail={"name": name}) from None
        children = []
    tags = sorted(child.rsplit("/", 1)[-1] for child in children)
    if last is not None:
        tags = [tag for tag in tags if tag > last]
    return page(tags, n)


async def tagsPointingAt(registry: Registry, name: str, digest: str) -> list[str]:
    """Every tag of the repository whose current link names digest."""
    found = []
    for tag in await layout.listNames(registry.driver, layout.tagsPath(name)):
        if await layout.readLink(registry.driver, layout.tagCurrentLinkPath(name, tag)) == digest:
            found.append(tag)
    return found
