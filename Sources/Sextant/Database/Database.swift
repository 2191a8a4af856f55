// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Shared state of an open database, owned by ``Database`` and referenced by its collections.
package final class DatabaseCore: @unchecked Sendable {  // mutable state is in Locked values
    package let path: String
    package let io: any FileIO
    package let configuration: Configuration
    private let manifest: Locked<Manifest>

    init(path: String, io: any FileIO, configuration: Configuration, manifest: Manifest) {
        self.path = path
        self.io = io
        self.configuration = configuration
        self.manifest = Locked(manifest)
    }

    package func collectionDirectory(_ id: UInt64) -> String { path + "/collections/" + hex16(id) }

    package var currentManifest: Manifest { manifest.withLock { $0 } }

    /// Applies `update` to the manifest and publishes the result atomically (new generation file, then
    /// CURRENT swapped by rename). On failure the in-memory manifest is unchanged.
    package func publish(_ update: (inout Manifest) throws(SextantError) -> Void) throws(SextantError) {
        try manifest.withLock { (m) throws(SextantError) in
            if let failure = poisoned.withLock({ $0 }) { throw failure }
            var next = m
            try update(&next)
            next.generation = m.generation + 1
            do throws(SextantError) {
                try Database.writeManifest(next, io: io, at: path)
            } catch {
                if error.cause is ManifestPublishUncertain {
                    // The new state is what the files show: keep it in memory (so nothing it names is removed
                    // as unpublished), and refuse further changes until a reopen re-reads the disk.
                    m = next
                    poisoned.withLock { $0 = error }
                }
                throw error
            }
            try? io.unlink(path + "/" + Manifest.fileName(m.generation))
            m = next
        }
    }

    /// Set when a manifest was renamed into place but its directory fsync failed: every later publish fails.
    package let poisoned = Locked<SextantError?>(nil)

    /// Whether `error` came from a publish that may have taken effect (see ``Database/writeManifest``): the
    /// files it named must not be removed.
    package static func mayHavePublished(_ error: SextantError) -> Bool { error.cause is ManifestPublishUncertain }
}

/// The cause of a publish whose new manifest is in place but not known to be durable.
package struct ManifestPublishUncertain: Error, Sendable {}

/// An open Sextant database: a directory of collections.
///
/// Only one process may open a database at a time (a `LOCK` file is held with `flock`); a second
/// gets ``SextantError/Code/locked``. Within the process, a `Database` is safe to share between threads.
///
/// ```swift
/// let db = try Database.open(at: "./sextant-data")
/// let docs = try db.createCollection("docs", dimension: 384, metric: .cosine)
/// try docs.upsert(.string("a"), vector: embedding, metadata: ["lang": "en"])
/// let hits = try docs.search(embedding, limit: 10)
/// ```
public final class Database: @unchecked Sendable {  // mutable state is in Locked values
    package let core: DatabaseCore
    private let lockFD: Int32
    private enum Slot {
        case open(VectorCollection)
        case failed(SextantError)
    }
    private let slots: Locked<[String: Slot]>
    private let closed = Atomic<Bool>(false)
    private var syncTimer: (any DispatchSourceTimer)?

    public var path: String { core.path }

    /// Opens the database at `path`, creating it if the directory is missing or empty.
    ///
    /// Recovery runs here: for each collection the log is replayed after its checkpoint, a torn tail is
    /// cut, and files no manifest names are removed. A collection whose files are corrupt does not keep
    /// the others from opening: using it throws the error that names the file and offset.
    /// - Throws: ``SextantError/Code/locked`` if another process has the database open;
    ///   ``SextantError/Code/corrupt`` if the manifest is damaged.
    public static func open(at path: String, configuration: Configuration = Configuration()) throws(SextantError) -> Database {
        try open(at: path, configuration: configuration, manifestOnly: false)
    }

    /// With `manifestOnly`, takes the lock and reads the manifest but opens no collection (for `verify` and
    /// `repair`, which look at the files themselves).
    package static func open(at path: String, configuration: Configuration, manifestOnly: Bool) throws(SextantError) -> Database {
        let io = configuration.fileIO
        let path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        let readOnly = configuration.readOnly
        if !io.exists(path) {
            if readOnly { throw SextantError(.notFound, "no database at \(path)") }
            try makeDirectories(io, path)
        } else if !io.isDirectory(path) {
            throw SextantError(.invalidArgument, "\(path) exists and is not a directory")
        }
        let fd = try lock(io, path, readOnly: readOnly)

        do throws(SextantError) {
            var manifest = try loadOrCreateManifest(io, path, readOnly: readOnly)
            if manifest.collections.contains(where: { $0.name.hasPrefix(stagingPrefix) }) {
                // Restores cut short: their staging collections were never published under a real name.
                manifest.collections.removeAll { $0.name.hasPrefix(stagingPrefix) }
                if !readOnly {
                    manifest.generation += 1
                    try writeManifest(manifest, io: io, at: path)
                    try? io.unlink(path + "/" + Manifest.fileName(manifest.generation - 1))
                }
            }
            let core = DatabaseCore(path: path, io: io, configuration: configuration, manifest: manifest)
            let manifestPath = path + "/" + Manifest.fileName(manifest.generation)
            let problems = manifest.inconsistencies()
            var slots: [String: Slot] = [:]
            for (i, entry) in manifest.collections.enumerated() where !manifestOnly {
                if let problem = problems[i] {
                    // Two entries may share a name: neither opens (the slot holds the error).
                    slots[entry.name] = .failed(SextantError(.corrupt, "collection '\(entry.name)' could not be opened: \(manifestPath): \(problem)"))
                    continue
                }
                do throws(SextantError) {
                    slots[entry.name] = .open(try VectorCollection(database: core, entry: entry))
                } catch {
                    slots[entry.name] = .failed(SextantError(error.code, "collection '\(entry.name)' could not be opened: \(error.message)", cause: error))
                }
            }
            if !readOnly && !manifestOnly {
                // Remove collection directories no manifest names (a drop or create cut short by a crash).
                let named = Set(manifest.collections.map { hex16($0.id) })
                if !io.exists(path + "/collections") { try io.makeDirectoryDurably(path + "/collections") }
                for name in try io.listDirectory(path + "/collections") where !named.contains(name) {
                    try io.removeTree(path + "/collections/" + name)
                }
                // Work directories of restores and backups cut short by a crash (decompressed chunks, a
                // merge's copy, a backup's staged hard links).
                for name in try io.listDirectory(path)
                where (name.hasPrefix("restore-") || name.hasPrefix("backup-")) && name.hasSuffix(".tmp") {
                    try io.removeTree(path + "/" + name)
                }
                // Snapshots cut short by a crash: being created, being imported, or being deleted.
                if io.isDirectory(path + "/snapshots") {
                    for name in try io.listDirectory(path + "/snapshots") where name.hasSuffix(".tmp") {
                        try io.removeTree(path + "/snapshots/" + name)
                    }
                }
            }
            let db = Database(core: core, lockFD: fd, slots: slots)
            db.startSyncTimer()
            return db
        } catch {
            if fd >= 0 { io.close(fd) }
            throw error
        }
    }

    /// Takes the database's lock: exclusive for writing (creating `LOCK` and writing our pid into it), shared
    /// for a read-only open. Returns the descriptor that holds it (-1: a read-only open of a directory without
    /// a `LOCK` file, which no writer has ever opened).
    private static func lock(_ io: any FileIO, _ path: String, readOnly: Bool) throws(SextantError) -> Int32 {
        let lockPath = path + "/LOCK"
        func holder() -> String {
            let text = (try? io.readFile(lockPath)).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            return text.isEmpty || !text.allSatisfy(\.isNumber) ? "" : " (pid \(text))"
        }
        if readOnly {
            let fd: Int32
            do throws(SextantError) { fd = try io.open(lockPath, flags: O_RDONLY, mode: 0) } catch {
                if error.code == .notFound { return -1 }
                throw error
            }
            if flock(fd, LOCK_SH | LOCK_NB) != 0 {
                io.close(fd)
                throw SextantError(.locked, "database \(path) is locked: another process\(holder()) has it open for writing; read-only opens wait for it to close")
            }
            return fd
        }
        let fd = try io.open(lockPath, flags: O_RDWR | O_CREAT, mode: 0o644)
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let who = holder()
            io.close(fd)
            throw SextantError(.locked, "database \(path) is locked by another process\(who); only one process may open it for writing at a time")
        }
        _ = ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    private init(core: DatabaseCore, lockFD: Int32, slots: [String: Slot]) {
        self.core = core
        self.lockFD = lockFD
        self.slots = Locked(slots)
    }

    deinit { close() }

    private func startSyncTimer() {
        guard case .interval(let ms) = core.configuration.durability, !core.configuration.readOnly else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(max(1, ms)))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            for c in self.openCollections() { c.syncLog() }
        }
        timer.resume()
        syncTimer = timer
    }

    private func openCollections() -> [VectorCollection] {
        slots.withLock { s in s.values.compactMap { if case .open(let c) = $0 { return c } else { return nil } } }
    }

    /// Makes the logs durable, stops background work and releases the lock. Idempotent.
    public func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        syncTimer?.cancel()
        for c in openCollections() { c.close() }
        if lockFD >= 0 {
            flock(lockFD, LOCK_UN)
            core.io.close(lockFD)
        }
    }

    // MARK: Collections

    /// Creates an empty collection.
    ///
    /// Names are 1–64 characters of letters, digits, `_`, `-` and `.`, starting with a letter or digit.
    /// - Throws: ``SextantError/Code/invalidName``, ``SextantError/Code/alreadyExists``,
    ///   ``SextantError/Code/invalidArgument`` for a dimension outside 1…65536.
    @discardableResult
    public func createCollection(
        _ name: String, dimension: Int, metric: Metric = .cosine, index: IndexConfiguration = IndexConfiguration()
    ) throws(SextantError) -> VectorCollection {
        try Self.validateName(name)
        return try createCollection(unchecked: name, dimension: dimension, metric: metric, index: index)
    }

    /// Collections a restore builds before swapping them in carry this prefix (not a valid user name); an
    /// open removes any a crash left behind.
    static let stagingPrefix = "__staging-"

    /// A hidden collection for a restore to fill; ``swapIn(_:as:)`` publishes it under a real name.
    func createStagingCollection(dimension: Int, metric: Metric, index: IndexConfiguration) throws(SextantError) -> VectorCollection {
        try createCollection(unchecked: Self.stagingPrefix + hex16(UInt64.random(in: 1...UInt64.max)), dimension: dimension, metric: metric, index: index)
    }

    /// Renames `staging` to `target` in one manifest publish, replacing a collection of that name (whose
    /// directory is then removed). Open handles to the replaced collection report ``SextantError/Code/closed``.
    func swapIn(_ staging: VectorCollection, as target: String) throws(SextantError) {
        staging.close()
        let old = slots.withLock { $0[target] }
        if case .open(let c) = old { c.close(flushLargeLog: false) }
        var replaced: UInt64?
        do {
            try core.publish { m throws(SextantError) in
                guard let i = m.collections.firstIndex(where: { $0.id == staging.id }) else {
                    throw SextantError(.closed, "the restored collection disappeared before it could be published")
                }
                if let j = m.collections.firstIndex(where: { $0.name == target }) {
                    replaced = m.collections[j].id
                }
                m.collections[i].name = target
                if let replaced { m.collections.removeAll { $0.id == replaced } }
            }
        } catch {
            reopen([target, staging.name])
            throw error
        }
        slots.withLock { _ = $0.removeValue(forKey: staging.name) }
        if let replaced { try? core.io.removeTree(core.collectionDirectory(replaced)) }
        reopen([target])
    }

    private func createCollection(
        unchecked name: String, dimension: Int, metric: Metric, index: IndexConfiguration
    ) throws(SextantError) -> VectorCollection {
        try checkWritable()
        try index.validate()
        if index.quantization == .int8 && metric == .manhattan {
            throw SextantError(.invalidArgument, "int8 quantization supports the cosine, dot and euclidean metrics, not manhattan")
        }
        guard (1...65536).contains(dimension) else {
            throw SextantError(.invalidArgument, "dimension must be between 1 and 65536, not \(dimension)")
        }
        // Serialize creates and drops through the manifest lock's publish.
        if slots.withLock({ $0[name] != nil }) {
            throw SextantError(.alreadyExists, "collection '\(name)' already exists")
        }
        var created: Manifest.CollectionEntry?
        try core.publish { m throws(SextantError) in
            guard !m.collections.contains(where: { $0.name == name }) else {
                throw SextantError(.alreadyExists, "collection '\(name)' already exists")
            }
            let entry = Manifest.CollectionEntry(
                id: m.nextCollectionID, name: name, dimension: dimension, metric: metric,
                createdAt: Date().timeIntervalSince1970, segments: [], checkpointSeq: 0, firstLiveWALFile: 1,
                nextSegmentID: 1, nextDeletionGeneration: 1, index: index)
            // The directory exists before the manifest names it; a crash in between leaves an orphan that
            // the next open removes.
            try VectorCollection.prepareDirectory(io: core.io, directory: core.collectionDirectory(entry.id))
            m.nextCollectionID += 1
            m.collections.append(entry)
            created = entry
        }
        let collection = try VectorCollection(database: core, entry: created!)
        slots.withLock { $0[name] = .open(collection) }
        return collection
    }

    /// Returns an existing collection.
    /// - Throws: ``SextantError/Code/notFound``, or the error that kept the collection from opening.
    public func collection(_ name: String) throws(SextantError) -> VectorCollection {
        try checkOpen()
        switch slots.withLock({ $0[name] }) {
        case .open(let c): return c
        case .failed(let e): throw e
        case nil:
            let known = collectionNames()
            throw SextantError(.notFound, "no collection named '\(name)'" + (known.isEmpty ? " (the database has none)" : " (collections: \(known.joined(separator: ", ")))"))
        }
    }

    /// Names of all collections, sorted (including any that failed to open).
    public func collectionNames() -> [String] {
        slots.withLock { $0.keys.sorted() }
    }

    /// Collections that failed to open, with the reason.
    public func unavailableCollections() -> [String: SextantError] {
        slots.withLock { s in s.compactMapValues { if case .failed(let e) = $0 { return e } else { return nil } } }
    }

    /// Deletes a collection and its files.
    public func dropCollection(_ name: String) throws(SextantError) {
        try checkWritable()
        guard let slot = slots.withLock({ $0[name] }) else {
            throw SextantError(.notFound, "no collection named '\(name)'")
        }
        if case .open(let c) = slot { c.close(flushLargeLog: false) }
        var droppedID: UInt64?
        try core.publish { m throws(SextantError) in
            droppedID = m.collections.first(where: { $0.name == name })?.id
            m.collections.removeAll { $0.name == name }
        }
        slots.withLock { _ = $0.removeValue(forKey: name) }
        if let droppedID { try core.io.removeTree(core.collectionDirectory(droppedID)) }
    }

    /// Opens (again) the named collections from the current manifest, replacing their slots.
    func reopen(_ names: [String]) {
        let manifest = core.currentManifest
        for name in names {
            guard let entry = manifest.collections.first(where: { $0.name == name }) else {
                slots.withLock { _ = $0.removeValue(forKey: name) }
                continue
            }
            let slot: Slot
            do { slot = .open(try VectorCollection(database: core, entry: entry)) } catch {
                slot = .failed(SextantError(error.code, "collection '\(name)' could not be opened: \(error.message)", cause: error))
            }
            slots.withLock { $0[name] = slot }
        }
    }

    private func checkOpen() throws(SextantError) {
        if closed.load(ordering: .acquiring) { throw SextantError(.closed, "database \(path) is closed") }
    }

    /// Throws ``SextantError/Code/readOnly`` for a database opened read-only.
    package func checkWritable() throws(SextantError) {
        try checkOpen()
        if core.configuration.readOnly { throw SextantError(.readOnly, "database \(path) is open read-only") }
    }

    /// Whether the database was opened read-only.
    public var isReadOnly: Bool { core.configuration.readOnly }

    package static func validateName(_ name: String) throws(SextantError) {
        let ok = !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D || c == 0x2E
            }
            && name.utf8.first.map { c in (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) } == true
        guard ok else {
            throw SextantError(.invalidName, "invalid collection name '\(name)': use 1–64 letters, digits, '_', '-' or '.', starting with a letter or digit")
        }
    }

    // MARK: Files

    private static func makeDirectories(_ io: any FileIO, _ path: String) throws(SextantError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if !io.exists(prefix) { try io.makeDirectoryDurably(prefix) }
        }
    }

    private static func loadOrCreateManifest(_ io: any FileIO, _ path: String, readOnly: Bool) throws(SextantError) -> Manifest {
        let currentPath = path + "/CURRENT"
        guard io.exists(currentPath) else {
            let leftovers = try io.listDirectory(path).filter { $0.hasPrefix("MANIFEST-") && !$0.hasSuffix(".tmp") }
            if !leftovers.isEmpty {
                throw SextantError(.corrupt, "\(currentPath) is missing but \(leftovers.joined(separator: ", ")) exist; refusing to guess which state is current")
            }
            if readOnly { throw SextantError(.notFound, "no database at \(path) (it has no CURRENT file)") }
            let fresh = Manifest(generation: 1, nextCollectionID: 1, collections: [])
            if !io.exists(path + "/collections") { try io.makeDirectoryDurably(path + "/collections") }
            try writeManifest(fresh, io: io, at: path)
            return fresh
        }
        let current = String(decoding: try io.readFile(currentPath), as: UTF8.self)
        let name = current.trimmingCharacters(in: .whitespacesAndNewlines)
        guard name.hasPrefix("MANIFEST-"), !name.contains("/"), current.hasSuffix("\n") else {
            throw SextantError(.corrupt, "\(currentPath): does not name a manifest")
        }
        let manifestPath = path + "/" + name
        let manifest = try Manifest.decode(try io.readFile(manifestPath), path: manifestPath)
        guard Manifest.fileName(manifest.generation) == name else {
            throw SextantError(.corrupt, "\(manifestPath): holds generation \(manifest.generation), not the one its name says")
        }
        if readOnly { return manifest }
        // Leftover manifests from interrupted publishes.
        for other in try io.listDirectory(path) where other.hasPrefix("MANIFEST-") && other != name {
            try io.unlink(path + "/" + other)
        }
        try? io.unlink(currentPath + ".tmp")
        return manifest
    }

    /// Writes `MANIFEST-<generation>` and points `CURRENT` at it. A failure before `CURRENT` is renamed leaves
    /// the old state current (and removes what it wrote); a failure after the rename — of the directory fsync
    /// that makes it durable — is thrown as ``ManifestPublishUncertain``: the new state is what the file system
    /// shows, but it may not survive a power cut.
    static func writeManifest(_ m: Manifest, io: any FileIO, at path: String) throws(SextantError) {
        let name = Manifest.fileName(m.generation)
        let manifestPath = path + "/" + name
        try io.writeFileAtomically(manifestPath, try m.encoded())
        let current = path + "/CURRENT"
        let tmp = current + ".tmp"
        do throws(SextantError) {
            let fd = try io.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
            do throws(SextantError) {
                try Array((name + "\n").utf8).withBytes { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
                try io.fsync(fd, path: tmp)
            } catch {
                io.close(fd)
                throw error
            }
            io.close(fd)
            try io.rename(tmp, to: current)
        } catch {
            try? io.unlink(tmp)
            try? io.unlink(manifestPath)
            throw error
        }
        do throws(SextantError) {
            try io.syncDirectory(path)
        } catch {
            throw SextantError(
                .readOnly, "\(path): the new manifest is in place but could not be made durable (\(error.message)); writes are refused until the database is reopened",
                cause: ManifestPublishUncertain())
        }
    }
}
