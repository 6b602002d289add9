"""The s3 driver under its other name, s3aws, as distribution accepts both."""

from __future__ import annotations

from typing import Any

from registryd.storage.s3 import createDriver as _createDriver


def createDriver(reactor: Any, parameters: dict | None) -> Any:
    """Build the s3 driver configured as C{storage.s3aws}."""
    return _createDriver(reactor, parameters, name="s3aws")
