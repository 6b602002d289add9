"""The one error configuration problems raise, naming the key path at fault."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """
    A configuration value is wrong, missing or not supported.

    @ivar keyPath: the key path at fault as a tuple, e.g. ('storage', 'filesystem', 'rootdirectory').
    """

    def __init__(self, message: str, keyPath: Sequence[str] = ()) -> None:
        self.message = message
        self.keyPath = tuple(str(k) for k in keyPath)
        super().__init__(message, self.keyPath)

    def __str__(self) -> str:
        if self.keyPath:
            return f"{'.'.join(self.keyPath)}: {self.message}"
        return self.message
