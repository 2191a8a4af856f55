// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Synchronization

/// A named, point-in-time copy of some or all collections, kept inside the database directory.
public struct SnapshotInfo: Sendable, Codable, Hashable {
    public var name: String
    /// Seconds since 1970-01-01T00:00:00Z.
    public var createdAt: Double
    public var collections: [String]
    /// Live records in the snapshot's segments (writes that raced the snapshot and sit in its copy of the
    /// log are not counted).
    public var records: Int
    /// Bytes of the files the snapshot names (shared with the database through hard links, so creating a
    /// snapshot copies none of them).
    public var bytes: Int
}

/// The description stored with a snapshot: `snapshots/<name>/SNAPSHOT`.
struct SnapshotManifest: Codable {
    static let formatVersion = 1
    var formatVersion: Int
    var name: String
    var createdAt: Double
    var collections: [Manifest.CollectionEntry]
    /// Live records per collection, by name.
    var records: [String: Int]
    /// Every file, relative to the snapshot directory, with its size.
    var files: [FileEntry]

    struct FileEntry: Codable {
        var path: String
        var bytes: Int
    }
}

extension Database {
    var snapshotsDirectory: String { path + "/snapshots" }

    /// Takes a snapshot of `collections` (all when nil): each collection's in-memory rows are flushed, then
    /// its immutable files are hard-linked and its manifest entry copied, on its optimizer queue (so no
    /// compaction removes a file meanwhile). Writes continue; a collection's snapshot holds exactly the
    /// writes acknowledged before its flush began. No vector bytes are copied.
    /// - Parameter name: letters, digits, `_`, `-`, `.`; nil picks `snapshot-<UTC time>`.
    /// - Throws: ``SextantError/Code/alreadyExists`` for a taken name; ``SextantError/Code/notFound`` for an
    ///   unknown collection.
    @discardableResult
    public func createSnapshot(_ name: String? = nil, collections: [String]? = nil) throws(SextantError) -> SnapshotInfo {
        let name = name ?? Self.defaultSnapshotName()
        try Self.validateSnapshotName(name)
        let io = core.io
        if !io.exists(snapshotsDirectory) {
            try io.makeDirectory(snapshotsDirectory)
            try io.syncDirectory(path)
        }
        let final = snapshotsDirectory + "/" + name
        if io.exists(final) { throw SextantError(.alreadyExists, "snapshot '\(name)' already exists") }
        let names = collections ?? collectionNames()
        var chosen: [VectorCollection] = []
        for n in names { chosen.append(try collection(n)) }
        let tmp = final + ".tmp"
        if io.exists(tmp) { try io.removeTree(tmp) }
        try io.makeDirectory(tmp)
        var ok = false
        defer { if !ok { try? io.removeTree(tmp) } }
        try io.makeDirectory(tmp + "/collections")
        var entries: [Manifest.CollectionEntry] = []
        var files: [SnapshotManifest.FileEntry] = []
        var records: [String: Int] = [:]
        for c in chosen {
            let (entry, linked, live) = try c.linkFilesForSnapshot(into: tmp)
            entries.append(entry)
            files += linked
            records[c.name] = live
        }
        let manifest = SnapshotManifest(
            formatVersion: SnapshotManifest.formatVersion, name: name, createdAt: Date().timeIntervalSince1970,
            collections: entries, records: records, files: files)
        try io.writeFileAtomically(tmp + "/SNAPSHOT", try Self.encode(manifest))
        // Every directory of the snapshot is durable before the rename makes it visible.
        try io.syncDirectory(tmp + "/collections")
        try io.syncDirectory(tmp)
        try io.rename(tmp, to: final)
        try io.syncDirectory(snapshotsDirectory)
        ok = true
        return Self.info(manifest)
    }

    /// The snapshots in this database, oldest first.
    public func snapshots() throws(SextantError) -> [SnapshotInfo] {
        let io = core.io
        guard io.isDirectory(snapshotsDirectory) else { return [] }
        var out: [SnapshotInfo] = []
        for entry in try io.listDirectory(snapshotsDirectory) where !entry.hasSuffix(".tmp") {
            out.append(Self.info(try loadSnapshot(entry)))
        }
        return out.sorted { ($0.createdAt, $0.name) < ($1.createdAt, $1.name) }
    }

    /// Deletes a snapshot (its hard links; files the database still uses stay).
    public func deleteSnapshot(_ name: String) throws(SextantError) {
        try Self.validateSnapshotName(name)
        let dir = snapshotsDirectory + "/" + name
        guard core.io.isDirectory(dir) else { throw SextantError(.notFound, "no snapshot named '\(name)'") }
        // Renamed out of the listing first (one durable rename), then removed: a crash part-way through the
        // removal leaves a `.tmp` directory the next open removes, never a snapshot without its description.
        let doomed = snapshotsDirectory + "/" + name + ".deleting-\(getpid())-\(hex16(UInt64.random(in: 1...UInt64.max))).tmp"
        try core.io.rename(dir, to: doomed)
        try core.io.syncDirectory(snapshotsDirectory)
        try core.io.removeTree(doomed)
    }

    /// Replaces collections with their state in snapshot `name` (all of the snapshot's collections, or
    /// those in `collections`; with `as`, one collection is restored under a new name and nothing is
    /// replaced). The new state is built beside the old (hard links into a new collection directory) and
    /// swapped in by one manifest publish: a crash or error before it changes nothing, after it the old
    /// files are removed. Open handles to a replaced collection report ``SextantError/Code/closed``.
    public func restoreSnapshot(_ name: String, collections: [String]? = nil, as newName: String? = nil) throws(SextantError) {
        try Self.validateSnapshotName(name)
        let snapshot = try loadSnapshot(name)
        let dir = snapshotsDirectory + "/" + name
        try verifySnapshotFiles(snapshot, in: dir)
        var entries = snapshot.collections
        if let collections {
            for c in collections where !entries.contains(where: { $0.name == c }) {
                throw SextantError(.notFound, "snapshot '\(name)' has no collection '\(c)' (it has: \(snapshot.collections.map(\.name).joined(separator: ", ")))")
            }
            entries = entries.filter { collections.contains($0.name) }
        }
        if let newName {
            guard entries.count == 1 else {
                throw SextantError(.invalidArgument, "restoring under a new name needs exactly one collection (the snapshot has \(entries.count); pick one)")
            }
            try Self.validateName(newName)
            if collectionNames().contains(newName) { throw SextantError(.alreadyExists, "collection '\(newName)' already exists") }
            entries[0].name = newName
        }
        try replaceCollections(with: entries) { (entry, target) throws(SextantError) in
            // `entry.id` is still the id the collection had in the snapshot.
            let sourceDir = dir + "/collections/" + hex16(entry.id)
            for file in try core.io.listDirectory(sourceDir) where file != "wal" {
                try core.io.link(sourceDir + "/" + file, to: target + "/" + file)
            }
            // Log files are copied: recovery may cut a torn tail, which must not reach the snapshot.
            if core.io.isDirectory(sourceDir + "/wal") {
                for file in try core.io.listDirectory(sourceDir + "/wal") {
                    try core.io.copyFile(sourceDir + "/wal/" + file, to: target + "/wal/" + file)
                }
            }
        }
    }

    /// Swaps in new versions of collections: for each entry, `fill` populates a fresh directory; then one
    /// manifest publish replaces (or adds) the collections by name; then the old directories go.
    func replaceCollections(
        with entries: [Manifest.CollectionEntry],
        fill: (Manifest.CollectionEntry, String) throws(SextantError) -> Void
    ) throws(SextantError) {
        let io = core.io
        // Close the collections being replaced first: their background work must not publish meanwhile.
        for e in entries {
            if let c = try? collection(e.name) { c.close(flushLargeLog: false) }
        }
        var replacedIDs: [UInt64] = []
        var installed: [Manifest.CollectionEntry] = []
        var createdDirs: [String] = []
        do {
            try core.publish { m throws(SextantError) in
                var next = m
                for e in entries {
                    var n = e
                    n.id = next.nextCollectionID
                    next.nextCollectionID += 1
                    let target = core.collectionDirectory(n.id)
                    try VectorCollection.prepareDirectory(io: io, directory: target)
                    createdDirs.append(target)
                    try fill(e, target)
                    try io.syncDirectory(target)
                    if let old = next.collections.firstIndex(where: { $0.name == n.name }) {
                        replacedIDs.append(next.collections[old].id)
                        next.collections[old] = n
                    } else {
                        next.collections.append(n)
                    }
                    installed.append(n)
                }
                m = next
            }
        } catch {
            for d in createdDirs { try? io.removeTree(d) }
            // The replaced collections were closed: reopen them as they were.
            reopen(entries.map(\.name))
            throw error
        }
        for old in replacedIDs { try? io.removeTree(core.collectionDirectory(old)) }
        reopen(installed.map(\.name))
    }

    private func loadSnapshot(_ name: String) throws(SextantError) -> SnapshotManifest {
        let path = snapshotsDirectory + "/" + name + "/SNAPSHOT"
        guard core.io.exists(path) else {
            if core.io.isDirectory(snapshotsDirectory + "/" + name) {
                // Left by an older version's interrupted delete: say what it is and how to clear it.
                throw SextantError(.corrupt, "\(path): missing: snapshot '\(name)' is incomplete (an interrupted delete?); remove it with `sextant snapshot delete \(name)`")
            }
            throw SextantError(.notFound, "no snapshot named '\(name)'")
        }
        let bytes = try core.io.readFile(path)
        let m: SnapshotManifest
        do { m = try JSONDecoder().decode(SnapshotManifest.self, from: Data(bytes)) } catch {
            throw SextantError(.corrupt, "\(path): not a valid snapshot description: \(error)")
        }
        guard m.formatVersion == SnapshotManifest.formatVersion else {
            throw SextantError(.unsupportedVersion, "\(path): snapshot format \(m.formatVersion) is not supported (this build reads \(SnapshotManifest.formatVersion))")
        }
        return m
    }

    /// Every file the snapshot names is present with its size; each segment's checksums verify.
    func verifySnapshotFiles(_ m: SnapshotManifest, in dir: String) throws(SextantError) {
        let io = core.io
        for f in m.files {
            let p = dir + "/" + f.path
            guard io.exists(p) else { throw SextantError(.corrupt, "\(p): missing from snapshot '\(m.name)'") }
            let fd = try io.open(p, flags: O_RDONLY, mode: 0)
            let size = try io.size(fd, path: p)
            io.close(fd)
            guard Int(size) == f.bytes else { throw SextantError(.corrupt, "\(p): \(size) bytes, the snapshot says \(f.bytes)") }
        }
        for c in m.collections {
            for s in c.segments {
                let segment = try Segment(io: io, path: dir + "/collections/" + hex16(c.id) + "/" + SegmentFile.name(s.id), expectedID: s.id)
                try segment.verifyAll()
            }
        }
    }

    static func encode(_ m: SnapshotManifest) throws(SextantError) -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        do { return Array(try enc.encode(m)) } catch { throw SextantError(.io, "could not encode the snapshot description: \(error)") }
    }

    static func info(_ m: SnapshotManifest) -> SnapshotInfo {
        SnapshotInfo(
            name: m.name, createdAt: m.createdAt, collections: m.collections.map(\.name),
            records: m.records.values.reduce(0, +), bytes: m.files.reduce(0) { $0 + $1.bytes })
    }

    static func defaultSnapshotName() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss.SSS"
        return "snapshot-" + f.string(from: Date())
    }

    static func validateSnapshotName(_ name: String) throws(SextantError) {
        do { try validateName(name) } catch {
            throw SextantError(.invalidName, "invalid snapshot name '\(name)': use 1–64 letters, digits, '_', '-' or '.', starting with a letter or digit")
        }
        if name.hasSuffix(".tmp") { throw SextantError(.invalidName, "invalid snapshot name '\(name)': it may not end in .tmp") }
    }
}

extension VectorCollection {
    /// Flushes, then — on the optimizer queue, so no merge removes a file meanwhile — hard-links every file
    /// the manifest names for this collection into `snapshotDir/collections/<id>/` and returns the manifest
    /// entry, the linked files and the number of live records.
    func linkFilesForSnapshot(into snapshotDir: String) throws(SextantError) -> (Manifest.CollectionEntry, [SnapshotManifest.FileEntry], Int) {
        try flush()
        var result: (Manifest.CollectionEntry, [SnapshotManifest.FileEntry], Int)?
        try runOptimizerNow { () throws(SextantError) in
            guard var entry = database.currentManifest.collections.first(where: { $0.id == self.id }) else {
                throw SextantError(.closed, "collection '\(name)' was dropped")
            }
            let target = snapshotDir + "/collections/" + hex16(entry.id)
            try io.makeDirectory(target)
            var files: [SnapshotManifest.FileEntry] = []
            var names: [String] = []
            for (i, s) in entry.segments.enumerated() {
                names.append(SegmentFile.name(s.id))
                if s.deletionGeneration != 0 { names.append(SegmentFile.deletionName(s.id, generation: s.deletionGeneration)) }
                // Derived files (graph, codes, payload index) are taken when present; a missing one is
                // left out of the snapshot's entry and rebuilt after a restore, as on open.
                if s.graph == true {
                    if io.exists(directory + "/" + HNSWFile.name(s.id)) && (s.quantized != true || io.exists(directory + "/" + QuantizedVectors.name(s.id))) {
                        names.append(HNSWFile.name(s.id))
                        if s.quantized == true { names.append(QuantizedVectors.name(s.id)) }
                    } else {
                        entry.segments[i].graph = nil
                        entry.segments[i].quantized = nil
                    }
                }
                if let g = s.payload {
                    if io.exists(directory + "/" + PayloadIndexFile.name(s.id, generation: g)) {
                        names.append(PayloadIndexFile.name(s.id, generation: g))
                    } else {
                        entry.segments[i].payload = nil
                    }
                }
            }
            for n in names {
                let from = directory + "/" + n
                try io.link(from, to: target + "/" + n)
                let fd = try io.open(from, flags: O_RDONLY, mode: 0)
                let size = try io.size(fd, path: from)
                io.close(fd)
                files.append(.init(path: "collections/" + hex16(entry.id) + "/" + n, bytes: Int(size)))
            }
            // The log after the checkpoint, copied as it is now (log files are appended to, so they are
            // copied, not linked): batches acknowledged after the flush may already have marked rows of
            // the linked segments deleted, and replaying the log on restore brings their new versions
            // back. Recovery cuts a batch torn at the end of the last file, so the copy holds a prefix
            // of the committed batches, like any crash.
            try io.makeDirectory(target + "/wal")
            let walDir = directory + "/wal"
            for name in try io.listDirectory(walDir).sorted() {
                guard let number = WALFile.number(fromName: name), number >= entry.firstLiveWALFile else { continue }
                let bytes = try io.copyFile(walDir + "/" + name, to: target + "/wal/" + name)
                files.append(.init(path: "collections/" + hex16(entry.id) + "/wal/" + name, bytes: bytes))
            }
            try io.syncDirectory(target + "/wal")
            try io.syncDirectory(target)
            // Live records as of this entry: its segments' rows minus their persisted deletion marks.
            let live = state.withLock { s in
                s.sealed.filter { seg in entry.segments.contains { $0.id == seg.segment.id } }.reduce(0) { $0 + $1.segment.rowCount - $1.persistedMarks }
            }
            result = (entry, files, live)
        }
        return result!
    }
}
