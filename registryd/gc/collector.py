"""
Mark and sweep garbage collection that is safe while the registry serves pushes.

Distribution's collector needs the registry read-only: a push that uploads a layer after
the mark, or links one the mark judged garbage, loses it. This one does not, by the
protocol below between the collector and a manifest push (both sides write first, then
look at what the other wrote, so at least one of them sees the other):

  1. Mark. Read every repository's revision, tag and layer links and every manifest, and
     mark what is reachable (L{registryd.gc.references}).
  2. Choose. A blob in the blob store that is not marked is a candidate, unless its data or
     any layer link to it is younger than the grace period (an upload, or a link made by a
     mount or a repeated upload, that a manifest push will likely reference soon). With
     delete-untagged, unreachable revisions older than the grace period are candidates too.
  3. Quarantine. Move each candidate (the blob's directory, the revision's link directory)
     under C{_gc/<run>/}, where no reader looks: from now on it is missing to the registry.
  4. Re-check. Read every repository's links again and mark from every live revision and
     every tag, through live and quarantined revisions. A candidate marked now was
     referenced by a push that happened during the collection: it goes back in place. So
     does a blob linked into a repository after step 1 (a new or rewritten layer link).
  5. Sweep. Delete what stayed in quarantine, the layer links to deleted blobs, and the tag
     index entries of deleted revisions.

A manifest push (L{registryd.registry.manifests}) writes its revision link and its tag, and
only then checks that its content, every blob and every child manifest it references are in
place; if one is missing it takes back what it wrote and fails with MANIFEST_BLOB_UNKNOWN.
If its check ran before the collector quarantined something it references, its links were
written before that too, hence before the re-check, which then sees them and puts the
thing back. If its check ran after, it finds the thing missing (quarantined, or already
deleted) and fails cleanly, or finds it restored. Either way no push succeeds with a blob
that then disappears. Readers may meet a quarantined blob as missing for the moment between
steps 3 and 4; only blobs no manifest referenced at step 1 are ever quarantined.

A run that dies between steps 3 and 5 leaves its quarantine behind: the next run (any
process) moves it all back once its heartbeat is older than L{STALE_RUN}, and a run that
is stopped (Ctrl-C, daemon shutdown) moves everything back before it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from registryd.gc import scan
from registryd.gc.references import References, UnreadableManifest, keptBlobs, reachable, references
from registryd.gc.report import GCResult, Report, humanSize
from registryd.registry import layout
from registryd.storage.interfaces import PathNotFound, StorageDriverError

QUARANTINE = f"{layout.ROOT}/_gc"
"""Where each run keeps what it is about to delete, mirroring the layout below C{<run>/}."""

DEFAULT_GRACE_PERIOD = 3600.0
"""Blobs and revisions written this recently (seconds) are never collected."""

STALE_RUN = 3600.0
"""A run whose heartbeat is this old (seconds) has died; its quarantine is moved back."""

HEARTBEAT_INTERVAL = 60.0
PROGRESS_REPOSITORIES = 100
PROGRESS_BLOBS = 10_000


class GarbageCollectionStopped(Exception):
    """The run was stopped before it finished; everything it had quarantined is back in place."""


def quarantinePath(run: str, path: str) -> str:
    """Where a run keeps the storage path while deciding whether to delete it."""
    return f"{QUARANTINE}/{run}{path[len(layout.ROOT) :]}"


class GarbageCollector:
    """One registry's garbage collection; L{run} may be called again for another pass."""

    log = Logger()

    def __init__(
        self,
        registry: Any,
        *,
        dryRun: bool = False,
        deleteUntagged: bool = False,
        gracePeriod: float = DEFAULT_GRACE_PERIOD,
        clock: IReactorTime | None = None,
        report: Report | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[no-redef]
        self._registry = registry
        self._driver = registry.driver
        self.dryRun = dryRun
        self.deleteUntagged = deleteUntagged
        self.gracePeriod = gracePeriod
        self._clock = clock
        self._report = report if report is not None else (lambda line: None)
        self._running: Deferred | None = None
        self._stopping = False
        self._recheck = True  # tests switch the re-check off to show the race it closes is real

    # -- the public face ---------------------------------------------------------------

    def run(self) -> Deferred:
        """Collect once. @return: Deferred firing with a L{GCResult}; L{GarbageCollectionStopped}."""
        self._stopping = False
        self._running = Deferred.fromCoroutine(self._run())
        return self._running

    def stop(self) -> Deferred:
        """Stop a run in progress, moving back what it quarantined. @return: Deferred firing None."""
        running = self._running
        if running is None or running.called:
            return Deferred.fromCoroutine(_none())
        self._stopping = True
        done: Deferred = Deferred()
        running.addBoth(lambda result: (done.callback(None), result)[1])
        return done

    # -- one run -----------------------------------------------------------------------

    async def _run(self) -> GCResult:
        self._runID = f"{int(self._clock.seconds())}-{uuid.uuid4().hex[:12]}"
        self._lastBeat = float("-inf")
        self._quarantined: dict[str, str] = {}  # storage path -> "blob" or "revision"
        self._references: dict[str, References] = {}
        self._cutoff = self._clock.seconds() - self.gracePeriod
        result = GCResult(dryRun=self.dryRun)
        mode = ", ".join(
            what
            for what, on in (("dry run", self.dryRun), ("deleting untagged manifests", self.deleteUntagged))
            if on
        )
        mode = f", {mode}" if mode else ""
        self._say(f"garbage collection {self._runID}: grace period {self.gracePeriod:g}s{mode}")
        if not self.dryRun:
            await self._recoverAbandonedRuns()
        try:
            return await self._collect(result)
        except BaseException:
            if self._quarantined:
                self.log.info("garbage collection {run} moving back everything it held", run=self._runID)
                await self._restoreAll()
            raise
        finally:
            # Never while something is still held: a stale heartbeat lets the next run put it back.
            if not self.dryRun and not self._quarantined:
                await _deleteQuietly(self._driver, f"{QUARANTINE}/{self._runID}")

    async def _collect(self, result: GCResult) -> GCResult:
        await self._beat(force=True)
        first, marked, removable = await self._mark(result)
        stored = await scan.storedBlobs(self._driver, self._blobProgress)
        result.blobs = len(stored)
        result.markedBlobs = len(marked & stored.keys())
        newestLink: dict[str, float] = {}
        for links in first.values():
            for digest, when in links.layers.items():
                newestLink[digest] = max(when, newestLink.get(digest, when))
        candidates = []
        for digest, blob in sorted(stored.items()):
            if digest in marked:
                continue
            if blob.modTime > self._cutoff or newestLink.get(digest, float("-inf")) > self._cutoff:
                result.keptYoung.append(digest)
            else:
                candidates.append(blob)

        if self.dryRun:
            for name, digest in removable:
                self._say(f"{name}: untagged manifest {digest} eligible for removal")
            for blob in candidates:
                self._say(f"blob {blob.digest} eligible for deletion ({humanSize(blob.size)})")
            doomed = {blob.digest for blob in candidates}
            result.removedManifests = removable
            result.deletedBlobs = candidates
            result.removedLayerLinks = [
                (name, digest) for name, links in first.items() for digest in links.layers if digest in doomed
            ]
            self._say(result.summary())
            return result

        # Quarantine, re-check, then sweep: see the module docstring for why this is safe.
        blobs = {blob.digest: blob for blob in candidates}
        cache = _descriptorCache(self._registry)
        # Held is already missing to readers: the cache must not keep serving it.
        for name, digest in removable:
            await self._hold(layout.revisionLinkDirectory(name, digest), "revision")
            await cache.forgetLink(name, digest)
        for blob in candidates:
            await self._hold(layout.blobDirectory(blob.digest), "blob")
            await cache.forget(blob.digest)
        heldRevisions = {
            (name, digest)
            for name, digest in removable
            if layout.revisionLinkDirectory(name, digest) in self._quarantined
        }
        heldBlobs = {d for d in blobs if layout.blobDirectory(d) in self._quarantined}
        if self._recheck:
            await self._putBackWhatPushesNeed(first, heldRevisions, heldBlobs, result)
        await self._sweep(first, heldRevisions, heldBlobs, blobs, result)
        self._say(result.summary())
        return result

    # -- mark --------------------------------------------------------------------------

    async def _mark(
        self, result: GCResult
    ) -> tuple[dict[str, scan.RepositoryLinks], set[str], list[tuple[str, str]]]:
        """Mark every blob reachable in any repository; with delete-untagged, list unreachable revisions."""
        names = await scan.repositoryNames(self._driver)
        first: dict[str, scan.RepositoryLinks] = {}
        marked: set[str] = set()
        removable: list[tuple[str, str]] = []
        for count, name in enumerate(names, 1):
            self._checkStopping()
            links = await scan.repositoryLinks(self._driver, name)
            first[name] = links
            graph = await self._graph(name, links.revisions)
            if self.deleteUntagged:
                roots = set(links.tags.values())
                roots.update(d for d, when in links.revisions.items() if when > self._cutoff)
            else:
                roots = set(links.revisions) | set(links.tags.values())
            reached = reachable(roots, graph)
            marked |= keptBlobs(reached, graph)
            removable.extend((name, digest) for digest in sorted(set(links.revisions) - reached))
            result.manifests += len(links.revisions)
            if count % PROGRESS_REPOSITORIES == 0:
                self._say(f"marked {count} of {len(names)} repositories")
            await self._beat()
        result.repositories = len(names)
        return first, marked, removable

    async def _graph(self, name: str, digests: Iterable[str]) -> dict[str, References]:
        return {digest: await self._referencesOf(name, digest) for digest in digests}

    async def _referencesOf(self, name: str, digest: str) -> References:
        """What a revision references (manifests are immutable: read once per run)."""
        refs = self._references.get(digest)
        if refs is not None:
            return refs
        content = await self._registry.manifestContent(digest)
        if content is None:
            # This run may hold it (a revision quarantined, then pushed again).
            try:
                content = bytes(
                    await self._driver.getContent(quarantinePath(self._runID, layout.blobDataPath(digest)))
                )
            except PathNotFound:
                self.log.warn(
                    "{repository}@{digest}: the revision's manifest content is missing",
                    repository=name,
                    digest=digest,
                )
                return References()
        try:
            refs = references(content)
        except UnreadableManifest as e:
            raise UnreadableManifest(
                f"{name}@{digest}: the manifest is unreadable ({e}); nothing is swept"
            ) from None
        self._references[digest] = refs
        return refs

    # -- quarantine and re-check ---------------------------------------------------------

    async def _hold(self, path: str, kind: str) -> None:
        """Move path into this run's quarantine (nothing there any more: skip)."""
        self._checkStopping()
        try:
            await self._driver.move(path, quarantinePath(self._runID, path))
        except PathNotFound:
            return
        self._quarantined[path] = kind
        await self._beat()

    async def _putBackWhatPushesNeed(
        self,
        first: dict[str, scan.RepositoryLinks],
        heldRevisions: set[tuple[str, str]],
        heldBlobs: set[str],
        result: GCResult,
    ) -> None:
        """Mark again from every live revision and tag; put back every held thing marked now."""
        byRepository: dict[str, set[str]] = {}
        for name, digest in heldRevisions:
            byRepository.setdefault(name, set()).add(digest)
        names = set(await scan.repositoryNames(self._driver)) | byRepository.keys()
        needed: set[str] = set()
        for name in sorted(names):
            self._checkStopping()
            links = await scan.repositoryLinks(self._driver, name)
            held = byRepository.get(name, set())
            graph = await self._graph(name, set(links.revisions) | held)
            reached = reachable(set(links.revisions) | set(links.tags.values()), graph)
            needed |= keptBlobs(reached, graph)
            for digest in sorted(held & reached):
                await self._putBack(layout.revisionLinkDirectory(name, digest))
                heldRevisions.discard((name, digest))
                result.restoredManifests.append((name, digest))
                self._say(f"{name}: manifest {digest} kept: a push referenced it during collection")
            before = first[name].layers if name in first else {}
            for digest, when in links.layers.items():
                if digest in heldBlobs and before.get(digest) != when:
                    needed.add(digest)  # linked (uploaded, mounted) since the mark
            await self._beat()
        for digest in sorted(needed & heldBlobs):
            await self._putBack(layout.blobDirectory(digest))
            heldBlobs.discard(digest)
            result.restoredBlobs.append(digest)
            self._say(f"blob {digest} kept: a push referenced it during collection")

    async def _putBack(self, path: str) -> None:
        """Move a held path back; if the same content is in place again (pushed anew), drop the copy."""
        held = quarantinePath(self._runID, path)
        if not await layout.exists(self._driver, path):
            try:
                await self._driver.move(held, path)
            except PathNotFound:
                pass
            except StorageDriverError:
                # Recreated between the check and the move (a directory is not replaced).
                if not await layout.exists(self._driver, path):
                    raise
        await _deleteQuietly(self._driver, held)
        self._quarantined.pop(path, None)

    async def _restoreAll(self) -> None:
        for path in list(self._quarantined):
            await self._putBack(path)

    # -- sweep -------------------------------------------------------------------------

    async def _sweep(
        self,
        first: dict[str, scan.RepositoryLinks],
        heldRevisions: set[tuple[str, str]],
        heldBlobs: set[str],
        blobs: dict[str, scan.StoredBlob],
        result: GCResult,
    ) -> None:
        driver = self._driver
        for name, digest in sorted(heldRevisions):
            self._checkStopping()
            path = layout.revisionLinkDirectory(name, digest)
            await _deleteQuietly(driver, quarantinePath(self._runID, path))
            self._quarantined.pop(path, None)
            result.removedManifests.append((name, digest))
            self._say(f"{name}: removed untagged manifest {digest}")
            if not await layout.exists(driver, path):
                for tag in await layout.listNames(driver, layout.tagsPath(name)):
                    indexLink = layout.tagIndexLinkPath(name, tag, digest)
                    await _deleteQuietly(driver, indexLink.rsplit("/", 1)[0])
        for digest in sorted(heldBlobs):
            self._checkStopping()
            path = layout.blobDirectory(digest)
            await _deleteQuietly(driver, quarantinePath(self._runID, path))
            self._quarantined.pop(path, None)
            result.deletedBlobs.append(blobs[digest])
            self._say(f"deleted blob {digest} ({humanSize(blobs[digest].size)})")
        for name, links in sorted(first.items()):
            for digest in sorted(heldBlobs & links.layers.keys()):
                # A blob uploaded again since keeps its links.
                if not await layout.exists(driver, layout.blobDataPath(digest)):
                    if await layout.deleteIfPresent(driver, layout.layerLinkDirectory(name, digest)):
                        result.removedLayerLinks.append((name, digest))
                        await _descriptorCache(self._registry).forgetLink(name, digest)

    # -- housekeeping ------------------------------------------------------------------

    async def _recoverAbandonedRuns(self) -> None:
        """Move back what runs that died (no heartbeat for L{STALE_RUN}) left in quarantine."""
        now = self._clock.seconds()
        for run in await layout.listNames(self._driver, QUARANTINE):
            if run == self._runID:
                continue
            beat = await layout.readLink(self._driver, f"{QUARANTINE}/{run}/heartbeat")
            try:
                alive = beat is not None and now - float(beat) < STALE_RUN
            except ValueError:
                alive = False
            if alive:
                continue
            try:
                files = await _filesBelow(self._driver, f"{QUARANTINE}/{run}")
            except PathNotFound:
                continue
            prefix = f"{QUARANTINE}/{run}"
            for held in files:
                original = layout.ROOT + held[len(prefix) :]
                if held.endswith("/heartbeat") or await layout.exists(self._driver, original):
                    continue
                try:
                    await self._driver.move(held, original)
                except PathNotFound:
                    pass
            await _deleteQuietly(self._driver, prefix)
            self._say(f"moved back {len(files)} files an interrupted collection ({run}) had set aside")

    async def _beat(self, force: bool = False) -> None:
        """Tell other runs this one is alive (at most every L{HEARTBEAT_INTERVAL})."""
        now = self._clock.seconds()
        if self.dryRun or (not force and now - self._lastBeat < HEARTBEAT_INTERVAL):
            return
        self._lastBeat = now
        await self._driver.putContent(f"{QUARANTINE}/{self._runID}/heartbeat", repr(now).encode("ascii"))

    def _blobProgress(self, count: int) -> None:
        if count % PROGRESS_BLOBS == 0:
            self._say(f"scanned {count} blobs")

    def _checkStopping(self) -> None:
        if self._stopping:
            raise GarbageCollectionStopped("garbage collection stopped")

    def _say(self, line: str) -> None:
        self._report(line)


def _descriptorCache(registry: Any) -> Any:
    """The registry's blob descriptor cache (none for a bare registry-like object)."""
    from registryd.registry.descriptorcache import NoDescriptorCache

    cache = getattr(registry, "descriptorCache", None)
    return cache if cache is not None else NoDescriptorCache()


async def _deleteQuietly(driver: Any, path: str) -> None:
    await layout.deleteIfPresent(driver, path)


async def _filesBelow(driver: Any, directory: str) -> list[str]:
    """Every file (not directory) below directory. PathNotFound."""
    files: list[str] = []

    def visit(info: Any) -> None:
        if not info.isDir:
            files.append(info.path)

    await driver.walk(directory, visit)
    return files


async def _none() -> None:
    return None
