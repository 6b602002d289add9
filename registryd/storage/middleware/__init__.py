"""
Storage middleware (distribution's C{middleware.storage}): wrappers around the configured
driver that change where blob downloads are redirected. C{redirect} sends clients to a
base URL plus the storage path; C{cloudfront} to a signed CloudFront URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from registryd.config.errors import ConfigError
from registryd.config.middleware import MiddlewareEntry
from registryd.storage.interfaces import IStorageDriver


def _redirect(driver: IStorageDriver, options: dict, keyPath: tuple[str, ...], clock: Any) -> IStorageDriver:
    from registryd.storage.middleware import redirect

    return redirect.create(driver, options, keyPath, clock)


def _cloudfront(
    driver: IStorageDriver, options: dict, keyPath: tuple[str, ...], clock: Any
) -> IStorageDriver:
    from registryd.storage.middleware import cloudfront

    return cloudfront.create(driver, options, keyPath, clock)


#: name -> factory(driver, options, options' key path, clock) returning the wrapped driver.
STORAGE_MIDDLEWARE: dict[str, Callable[..., IStorageDriver]] = {
    "redirect": _redirect,
    "cloudfront": _cloudfront,
}


def applyStorageMiddleware(
    driver: IStorageDriver, entries: Iterable[MiddlewareEntry], clock: Any
) -> IStorageDriver:
    """
    Wrap C{driver} in each configured middleware in turn (the last entry outermost).

    @raise ConfigError: an unknown middleware name or a bad option, naming its key path.
    """
    for entry in entries:
        factory = STORAGE_MIDDLEWARE.get(entry.name)
        if factory is None:
            known = ", ".join(STORAGE_MIDDLEWARE)
            raise ConfigError(
                f"unknown storage middleware {entry.name!r} (registryd has: {known})",
                [*entry.keyPath, "name"],
            )
        driver = factory(driver, entry.options, (*entry.keyPath, "options"), clock)
    return driver


__all__ = ["STORAGE_MIDDLEWARE", "applyStorageMiddleware"]
