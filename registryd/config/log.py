"""The C{log} section (and distribution's deprecated top-level C{loglevel})."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registryd.config import parsers
from registryd.config.errors import ConfigError

LEVELS = ("error", "warn", "info", "debug")
FORMATTERS = ("text", "json", "logstash")


@dataclass(frozen=True)
class LogConfig:
    """How much to log, in which format, with which extra fields on every line."""

    level: str = "info"
    formatter: str = "text"
    fields: dict[str, Any] = field(default_factory=dict)
    accessLogDisabled: bool = False


def _level(value: object, keyPath: list[str]) -> str:
    level = parsers.string(value, keyPath).lower()
    # logrus also knows these; map them onto the four distribution documents.
    level = {"warning": "warn", "fatal": "error", "panic": "error", "trace": "debug"}.get(level, level)
    if level not in LEVELS:
        raise ConfigError(f"unknown level {value!r} (one of {', '.join(LEVELS)})", keyPath)
    return level


def parseLog(section: object, deprecatedLevel: object = None) -> LogConfig:
    """Read the log section; the old top-level loglevel applies when log.level is not set."""
    values = parsers.mapping(section, ["log"])
    parsers.onlyKeys(values, ("level", "formatter", "fields", "accesslog", "hooks"), ["log"])
    parsers.notSupported(values.get("hooks"), ["log", "hooks"], "log hooks (e.g. mail)")

    if values.get("level") is not None:
        level = _level(values["level"], ["log", "level"])
    elif deprecatedLevel is not None:
        level = _level(deprecatedLevel, ["loglevel"])
    else:
        level = "info"

    formatter = "text"
    if values.get("formatter") is not None:
        formatter = parsers.string(values["formatter"], ["log", "formatter"])
        if formatter not in FORMATTERS:
            raise ConfigError(
                f"unknown formatter {formatter!r} (one of {', '.join(FORMATTERS)})", ["log", "formatter"]
            )

    fields = parsers.mapping(values.get("fields"), ["log", "fields"])
    for name, value in fields.items():
        if isinstance(value, dict | list):
            what = parsers.typeName(value)
            raise ConfigError(f"expected a plain value, got {what}", ["log", "fields", name])

    accessLog = parsers.mapping(values.get("accesslog"), ["log", "accesslog"])
    parsers.onlyKeys(accessLog, ("disabled",), ["log", "accesslog"])
    disabled = False
    if accessLog.get("disabled") is not None:
        disabled = parsers.boolean(accessLog["disabled"], ["log", "accesslog", "disabled"])

    return LogConfig(level=level, formatter=formatter, fields=fields, accessLogDisabled=disabled)
