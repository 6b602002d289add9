"""The C{log} section (and distribution's deprecated top-level C{loglevel})."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
)

from registryd.config import parsers
from registryd.config.errors import ConfigError

LEVELS = ("error", "warn", "info", "debug")
FORMATTERS = ("text", "json", "logstash")

FIELDS_KEY = "registryd_fields"
"""An event key holding a dict of fields the json and logstash formats add to the line (access log)."""
PLAIN_KEY = "registryd_plain"
"""An event key: in the text format write the message alone, without time and namespace (access log)."""


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
    disabled = parsers.optional(accessLog, "disabled", parsers.boolean, False, ["log", "accesslog"])

    return LogConfig(level=level, formatter=formatter, fields=fields, accessLogDisabled=disabled)


_LEVELS = {
    "error": LogLevel.error,
    "warn": LogLevel.warn,
    "info": LogLevel.info,
    "debug": LogLevel.debug,
}


def _textLine(fields: dict[str, Any]) -> Callable[[dict[str, Any]], str | None]:
    suffix = "".join(f" {name}={value}" for name, value in fields.items())

    def format(event: dict[str, Any]) -> str | None:
        if event.get(PLAIN_KEY):
            return formatEvent(event) + suffix + "\n"
        line = formatEventAsClassicLogText(event)
        if line is None or not suffix:
            return line
        return line[:-1] + suffix + "\n"

    return format


# sd-daemon(3) priority prefixes: journald takes a line's level from them.
_PRIORITIES = {
    LogLevel.critical: 2,
    LogLevel.error: 3,
    LogLevel.warn: 4,
    LogLevel.info: 6,
    LogLevel.debug: 7,
}


def _journalLine(fields: dict[str, Any]) -> Callable[[dict[str, Any]], str | None]:
    """
    Text for journald: one line per event (journald makes an entry of every line, so a
    traceback's line breaks are written as \\n), led by the event's priority; no time,
    journald records its own.
    """
    suffix = "".join(f" {name}={value}" for name, value in fields.items())

    def format(event: dict[str, Any]) -> str | None:
        message = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            message += "\n" + failure.getTraceback()
        message = message.rstrip("\n").replace("\r", "\\r").replace("\n", "\\n")
        priority = _PRIORITIES.get(event.get("log_level", LogLevel.info), 6)
        if event.get(PLAIN_KEY):
            return f"<{priority}>{message}{suffix}\n"
        return f"<{priority}>[{event.get('log_namespace', '-')}] {message}{suffix}\n"

    return format


def writesToJournal(outFile: IO[str], environ: Any = os.environ) -> bool:
    """True when outFile is the stream systemd connected to journald (C{JOURNAL_STREAM} names it)."""
    stream = environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(outFile.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def _jsonLine(fields: dict[str, Any], logstash: bool) -> Callable[[dict[str, Any]], str | None]:
    def format(event: dict[str, Any]) -> str | None:
        level = event.get("log_level", LogLevel.info)
        when = datetime.fromtimestamp(event.get("log_time") or time.time(), tz=UTC).isoformat()
        message = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            message += "\n" + failure.getTraceback()
        record: dict[str, Any] = dict(fields)
        if logstash:
            record.update({"@timestamp": when, "@version": "1", "level": level.name, "message": message})
        else:
            record.update({"time": when, "level": level.name, "msg": message})
        record["namespace"] = event.get("log_namespace", "")
        record.update(event.get(FIELDS_KEY) or {})
        return json.dumps(record, default=str, ensure_ascii=False) + "\n"

    return format


def makeObserver(config: LogConfig, outFile: IO[str], environ: Any = os.environ) -> ILogObserver:
    """
    An observer writing events at config.level or above to outFile, as text or one JSON
    object a line; text for journald when outFile is systemd's journal stream.
    """
    if config.formatter == "text" and writesToJournal(outFile, environ):
        formatter = _journalLine(config.fields)
    elif config.formatter == "text":
        formatter = _textLine(config.fields)
    else:
        formatter = _jsonLine(config.fields, logstash=config.formatter == "logstash")
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[config.level])
    return FilteringLogObserver(FileLogObserver(outFile, formatter), [predicate])
