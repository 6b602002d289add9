"""
The C{storage} section: exactly one driver section plus the storage-wide options.

The driver's own parameters are passed through untouched as a plain dict; the driver
plugin validates them when it is created (see L{registryd.plugins}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registryd.config import parsers
from registryd.config.errors import ConfigError

# Keys under storage that are options, not driver names.
STORAGE_OPTIONS = ("delete", "redirect", "cache", "maintenance", "tag")


@dataclass(frozen=True)
class UploadPurgingConfig:
    """The background purge of abandoned uploads (distribution's defaults: on, a week old, daily)."""

    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dryRun: bool = False


@dataclass(frozen=True)
class GarbageCollectionConfig:
    """
    C{storage.maintenance.gc}, registryd's own key: garbage collection on a schedule inside the
    daemon (off by default), with the same choices as C{registryd garbage-collect}.
    """

    enabled: bool = False
    interval: float = 24 * 3600.0
    dryRun: bool = False
    deleteUntagged: bool = False
    gracePeriod: float = 3600.0


@dataclass(frozen=True)
class StorageConfig:
    """Which driver holds the bytes, its parameters, and the storage-wide switches."""

    driver: str
    parameters: dict[str, Any] = field(default_factory=dict)
    deleteEnabled: bool = False
    redirectDisabled: bool = False
    readOnly: bool = False
    uploadPurging: UploadPurgingConfig = field(default_factory=UploadPurgingConfig)
    gc: GarbageCollectionConfig = field(default_factory=GarbageCollectionConfig)
    # The blob descriptor cache (registryd.registry.descriptorcache): "inmemory" (a bounded
    # LRU of blobDescriptorCacheSize entries) or "redis" (the top-level redis section);
    # None: every blob stat goes to storage.
    blobDescriptorCache: str | None = None
    blobDescriptorCacheSize: int = 10000
    # Which key named it (blobdescriptor, or layerinfo, its old name), for messages.
    blobDescriptorCacheKey: str = "blobdescriptor"


def _section(storage: dict[str, Any], name: str) -> dict[str, Any]:
    return parsers.mapping(storage.get(name), ["storage", name])


def _parsePurging(value: object) -> UploadPurgingConfig:
    path = ["storage", "maintenance", "uploadpurging"]
    values = parsers.mapping(value, path)
    parsers.onlyKeys(values, ("enabled", "age", "interval", "dryrun"), path)
    defaults = UploadPurgingConfig()
    interval = parsers.optional(values, "interval", parsers.duration, defaults.interval, path)
    if interval <= 0:
        raise ConfigError("must be a positive duration", [*path, "interval"])
    return UploadPurgingConfig(
        enabled=parsers.optional(values, "enabled", parsers.boolean, defaults.enabled, path),
        age=parsers.optional(values, "age", parsers.duration, defaults.age, path),
        interval=interval,
        dryRun=parsers.optional(values, "dryrun", parsers.boolean, defaults.dryRun, path),
    )


def _parseGarbageCollection(value: object) -> GarbageCollectionConfig:
    path = ["storage", "maintenance", "gc"]
    values = parsers.mapping(value, path)
    parsers.onlyKeys(values, ("enabled", "interval", "dryrun", "deleteuntagged", "graceperiod"), path)
    defaults = GarbageCollectionConfig()
    interval = parsers.optional(values, "interval", parsers.duration, defaults.interval, path)
    if interval <= 0:
        raise ConfigError("must be a positive duration", [*path, "interval"])
    return GarbageCollectionConfig(
        enabled=parsers.optional(values, "enabled", parsers.boolean, defaults.enabled, path),
        interval=interval,
        dryRun=parsers.optional(values, "dryrun", parsers.boolean, defaults.dryRun, path),
        deleteUntagged=parsers.optional(
            values, "deleteuntagged", parsers.boolean, defaults.deleteUntagged, path
        ),
        gracePeriod=parsers.optional(values, "graceperiod", parsers.duration, defaults.gracePeriod, path),
    )


def parseStorage(section: object) -> StorageConfig:
    """Read the storage section; a bare driver name (C{storage: inmemory}) is accepted as in distribution."""
    if isinstance(section, str):
        section = {section: None}
    if section is None:
        raise ConfigError("a storage driver section is required (e.g. filesystem)", ["storage"])
    storage = parsers.mapping(section, ["storage"])

    drivers = [name for name in storage if name not in STORAGE_OPTIONS]
    if not drivers:
        raise ConfigError("a storage driver section is required (e.g. filesystem)", ["storage"])
    if len(drivers) > 1:
        found = ", ".join(drivers)
        raise ConfigError(f"exactly one storage driver may be configured, found {found}", ["storage"])
    driver = drivers[0]
    parameters = parsers.mapping(storage[driver], ["storage", driver])

    delete = _section(storage, "delete")
    parsers.onlyKeys(delete, ("enabled",), ["storage", "delete"])
    deleteEnabled = parsers.optional(delete, "enabled", parsers.boolean, False, ["storage", "delete"])

    redirect = _section(storage, "redirect")
    parsers.onlyKeys(redirect, ("disable",), ["storage", "redirect"])
    redirectDisabled = parsers.optional(redirect, "disable", parsers.boolean, False, ["storage", "redirect"])

    maintenance = _section(storage, "maintenance")
    parsers.onlyKeys(maintenance, ("uploadpurging", "readonly", "gc"), ["storage", "maintenance"])
    readonly = parsers.mapping(maintenance.get("readonly"), ["storage", "maintenance", "readonly"])
    parsers.onlyKeys(readonly, ("enabled",), ["storage", "maintenance", "readonly"])
    readOnly = parsers.optional(
        readonly, "enabled", parsers.boolean, False, ["storage", "maintenance", "readonly"]
    )
    purging = _parsePurging(maintenance.get("uploadpurging"))
    gc = _parseGarbageCollection(maintenance.get("gc"))

    cache = _section(storage, "cache")
    parsers.onlyKeys(cache, ("blobdescriptor", "blobdescriptorsize", "layerinfo"), ["storage", "cache"])
    blobDescriptorCache = None
    cacheKey = "blobdescriptor"
    # "layerinfo" is the old name distribution still reads.
    for key in ("blobdescriptor", "layerinfo"):
        if cache.get(key) is not None:
            blobDescriptorCache = parsers.string(cache[key], ["storage", "cache", key])
            cacheKey = key
            if blobDescriptorCache not in ("inmemory", "redis"):
                raise ConfigError(
                    f"unknown blob descriptor cache {blobDescriptorCache!r} (inmemory or redis)",
                    ["storage", "cache", key],
                )
    cacheSize = parsers.optional(
        cache,
        "blobdescriptorsize",
        lambda value, keyPath: parsers.integer(value, keyPath, minimum=0),
        StorageConfig.blobDescriptorCacheSize,
        ["storage", "cache"],
    )

    tag = _section(storage, "tag")
    parsers.onlyKeys(tag, ("concurrencylimit",), ["storage", "tag"])
    parsers.notSupported(
        tag.get("concurrencylimit"), ["storage", "tag", "concurrencylimit"], "tuning tag lookup concurrency"
    )

    return StorageConfig(
        driver=driver,
        parameters=parameters,
        deleteEnabled=deleteEnabled,
        redirectDisabled=redirectDisabled,
        readOnly=readOnly,
        uploadPurging=purging,
        gc=gc,
        blobDescriptorCache=blobDescriptorCache,
        blobDescriptorCacheSize=cacheSize,
        blobDescriptorCacheKey=cacheKey,
    )
