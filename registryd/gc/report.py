"""What a garbage collection did (or, in a dry run, would do), and how it is told to an operator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from registryd.gc.scan import StoredBlob

Report = Callable[[str], None]
"""Where a collection's lines go: print for the command, the log for the scheduled run."""


def humanSize(size: int) -> str:
    """A byte count as an operator reads it: C{1.5 MiB (1572864 bytes)}."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B":
        return f"{size} bytes"
    return f"{value:.1f} {unit} ({size} bytes)"


@dataclass
class GCResult:
    """The outcome of one run; in a dry run, the deletions are those that would be made."""

    dryRun: bool = False
    repositories: int = 0
    manifests: int = 0
    blobs: int = 0
    markedBlobs: int = 0
    deletedBlobs: list[StoredBlob] = field(default_factory=list)
    removedManifests: list[tuple[str, str]] = field(default_factory=list)
    removedLayerLinks: list[tuple[str, str]] = field(default_factory=list)
    keptYoung: list[str] = field(default_factory=list)
    restoredBlobs: list[str] = field(default_factory=list)
    restoredManifests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def deletedBytes(self) -> int:
        """The bytes of blob data deleted (or that would be)."""
        return sum(blob.size for blob in self.deletedBlobs)

    def summary(self) -> str:
        """One line: what was marked, deleted (or would be), kept young and restored."""
        verb = "eligible for deletion" if self.dryRun else "deleted"
        parts = [
            f"{self.repositories} repositories, {self.manifests} manifests, {self.blobs} blobs scanned",
            f"{self.markedBlobs} blobs marked",
            f"{len(self.deletedBlobs)} blobs {verb} ({humanSize(self.deletedBytes)})",
        ]
        if self.removedManifests:
            removed = "eligible for removal" if self.dryRun else "removed"
            parts.append(f"{len(self.removedManifests)} untagged manifests {removed}")
        if self.removedLayerLinks:
            unlinked = "to unlink" if self.dryRun else "unlinked"
            parts.append(f"{len(self.removedLayerLinks)} layer links {unlinked}")
        if self.keptYoung:
            parts.append(f"{len(self.keptYoung)} unreferenced blobs kept (younger than the grace period)")
        if self.restoredBlobs or self.restoredManifests:
            parts.append(
                f"{len(self.restoredBlobs)} blobs and {len(self.restoredManifests)} manifests "
                "kept because pushes referenced them during collection"
            )
        return "; ".join(parts)
