"""
Garbage collection: delete the blobs no manifest references (and, on request, the manifests
no tag reaches), safely while the registry serves pushes. See L{registryd.gc.collector}.
"""

from registryd.gc.collector import (
    DEFAULT_GRACE_PERIOD,
    GarbageCollectionStopped,
    GarbageCollector,
    quarantinePath,
)
from registryd.gc.references import References, UnreadableManifest, references
from registryd.gc.report import GCResult, humanSize
from registryd.gc.schedule import ScheduledGarbageCollection

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "GCResult",
    "GarbageCollectionStopped",
    "GarbageCollector",
    "References",
    "ScheduledGarbageCollection",
    "UnreadableManifest",
    "humanSize",
    "quarantinePath",
    "references",
]
