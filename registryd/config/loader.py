"""
Reading the configuration: the YAML file, distribution's C{REGISTRY_*} environment
overrides, and the defaults used when there is no file at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from registryd.config.configuration import VERSION, Configuration, parseDocument
from registryd.config.errors import ConfigError
from registryd.config.storage import STORAGE_OPTIONS

ENV_PREFIX = "REGISTRY_"
# Environment variables distribution reads for other purposes, not as overrides.
CONFIG_PATH_VARIABLE = "REGISTRY_CONFIGURATION_PATH"
_NOT_OVERRIDES = frozenset({CONFIG_PATH_VARIABLE})

SYSTEM_ROOT = "/var/lib/registryd"


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping instead of keeping the last."""


def _constructMapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for keyNode, _ in node.value:
        key = loader.construct_object(keyNode)
        if key in seen:
            raise ConfigError(f"key {key!r} given twice in one mapping (line {keyNode.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _constructMapping)


def readYAML(text: str, source: str) -> object:
    """Parse a YAML document, turning syntax errors into a one-line L{ConfigError}."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: invalid YAML{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(e).split())}") from None


def defaultRootDirectory(environ: Mapping[str, str] = os.environ) -> str:
    """Where filesystem storage lives without a config: /var/lib/registryd if writable, else per user."""
    parent = os.path.dirname(SYSTEM_ROOT)
    if os.path.isdir(SYSTEM_ROOT):
        if os.access(SYSTEM_ROOT, os.W_OK | os.X_OK):
            return SYSTEM_ROOT
    elif os.access(parent, os.W_OK | os.X_OK):
        return SYSTEM_ROOT
    dataHome = environ.get("XDG_DATA_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(dataHome, "registryd")


def defaultDocument(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The configuration used when no file is given: filesystem storage, listening on :5000."""
    return {
        "version": VERSION,
        "storage": {"filesystem": {"rootdirectory": defaultRootDirectory(environ)}},
        "http": {"addr": ":5000"},
    }


def _findKey(node: Mapping[str, Any], parts: list[str]) -> tuple[str | None, int]:
    """
    Find the existing key of node that the leading parts name, case-insensitively.

    Keys with underscores (gcs's C{project_id}) span several parts; the longest match wins.
    @return: the key and how many parts it used, or (None, 1).
    """
    byUpper = {str(key).upper(): key for key in node}
    for count in range(len(parts), 0, -1):
        key = byUpper.get("_".join(parts[:count]))
        if key is not None:
            return key, count
    return None, 1


def _setPath(node: Any, parts: list[str], value: object, name: str) -> list[str]:
    """Set the value at the path parts name inside node; return the key path written."""
    if isinstance(node, list):
        if not parts[0].isdigit() or int(parts[0]) > len(node):
            raise ConfigError(f"environment variable {name}: {parts[0]!r} is not an index of this list")
        index = int(parts[0])
        if len(parts) == 1:
            if index == len(node):
                node.append(value)
            else:
                node[index] = value
            return [parts[0]]
        if index == len(node):
            node.append({})
        if not isinstance(node[index], dict | list):
            node[index] = {}
        return [parts[0], *_setPath(node[index], parts[1:], value, name)]

    key, used = _findKey(node, parts)
    if key is None:
        key = parts[0].lower()
    if used == len(parts):
        node[key] = value
        return [key]
    child = node.get(key)
    if not isinstance(child, dict | list):
        child = node[key] = {}
    return [key, *_setPath(child, parts[used:], value, name)]


def _replaceDriver(document: dict[str, Any], value: object) -> None:
    """
    REGISTRY_STORAGE=<driver>: choose the driver. A driver other than the file's replaces
    the file's driver section and its parameters (as distribution does); the storage-wide
    options (delete, maintenance, redirect, cache) are kept, where distribution would drop
    them too — losing delete.enabled to a driver switch helps nobody.
    """
    storage = document.get("storage")
    if not isinstance(value, str) or not isinstance(storage, dict):
        document["storage"] = value
        return
    if value in storage:
        return
    document["storage"] = {key: item for key, item in storage.items() if key in STORAGE_OPTIONS}
    document["storage"][value] = {}


def applyEnvironment(document: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """
    Apply C{REGISTRY_*} overrides in place, in lexical order of the variable names so that
    C{REGISTRY_STORAGE} comes before C{REGISTRY_STORAGE_S3_REGION}, as in distribution.
    Values are read as YAML scalars (C{true}, C{10}, C{"text"}).

    @return: which key path each variable set, to name the variable in errors.
    """
    written: dict[tuple[str, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        parts = name[len(ENV_PREFIX) :].split("_")
        if not all(parts):
            raise ConfigError(f"environment variable {name}: empty key name between underscores")
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            raise ConfigError(f"environment variable {name}: value is not valid YAML") from None
        if parts == ["STORAGE"]:
            _replaceDriver(document, value)
            written[("storage",)] = name
            continue
        written[tuple(_setPath(document, parts, value, name))] = name
    return written


def _blame(error: ConfigError, written: Mapping[tuple[str, ...], str]) -> ConfigError:
    """Name the environment variable behind a bad value, when one set it."""
    for length in range(len(error.keyPath), 0, -1):
        name = written.get(error.keyPath[:length])
        if name is not None:
            return ConfigError(f"{error.message} (set by environment variable {name})", error.keyPath)
    # A section made wrong by what variables put inside it (a second storage driver).
    inside = sorted(
        name
        for path, name in written.items()
        if error.keyPath and path[: len(error.keyPath)] == error.keyPath
    )
    if inside:
        return ConfigError(f"{error.message} (environment: {', '.join(inside)})", error.keyPath)
    return error


def load(path: str | None = None, environ: Mapping[str, str] = os.environ) -> Configuration:
    """
    Read and validate the configuration at path (or the defaults when None; the path may
    also come from C{REGISTRY_CONFIGURATION_PATH} as with distribution), then apply the
    environment overrides. Raises L{ConfigError} naming the key path at fault.
    """
    if path is None:
        path = environ.get(CONFIG_PATH_VARIABLE) or None
    if path is None:
        document: object = defaultDocument(environ)
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read configuration file {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
        document = readYAML(text, path)
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: the configuration must be a YAML mapping")
    written = applyEnvironment(document, environ)
    try:
        return parseDocument(document, path)
    except ConfigError as e:
        raise _blame(e, written) from None
