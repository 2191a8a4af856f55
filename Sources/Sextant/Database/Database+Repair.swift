// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What ``Database/repair(at:apply:configuration:)`` found and did (or, in a dry run, would do).
public struct RepairReport: Sendable, Codable {
    /// Records that could not be salvaged.
    public struct Loss: Sendable, Codable, Hashable {
        public var collection: String
        /// What was lost, with the file (and offset) it was in.
        public var what: String
        /// How many records, when known.
        public var records: Int?
        /// Their ids, when they could be read (at most 1,000; `idsComplete` says whether that is all).
        public var ids: [String]
        public var idsComplete: Bool
    }
    /// Whether the repair was applied (false: a dry run).
    public var applied = false
    /// One line per change, in the order made.
    public var actions: [String] = []
    public var losses: [Loss] = []
    /// Damaged files, moved (hard-linked, then removed from use) to `quarantineDirectory`.
    public var quarantined: [String] = []
    public var quarantineDirectory: String?
    /// Batches salvaged from damaged logs, per collection.
    public var salvagedBatches: [String: Int] = [:]
    /// Nothing needed repair.
    public var isClean: Bool { actions.isEmpty }
}

extension Database {
    /// Salvages a damaged database: what can be read is kept, damaged files are moved to a quarantine
    /// directory, and the report says exactly what was lost. A dry run (the default) changes nothing.
    ///
    /// - Damaged segment: dropped from its collection (quarantined); its live records are lost — listed by id
    ///   when its key section is intact.
    /// - Damaged deletion file: replaced by marks recomputed from newer segments (rows an id's newer version
    ///   replaced are marked again); records deleted without being replaced may come back, which the report
    ///   says.
    /// - Damaged graph, int8 codes or payload index: dropped (derived data, rebuilt on the next open).
    /// - Damaged log: every intact batch is replayed, also those after the damage; the batches in between are
    ///   lost (listed by sequence number, with the ids that could still be read). The salvaged state is then
    ///   written to segments and the damaged logs become obsolete.
    /// - Inconsistent manifest entries: duplicate segment entries are merged, counters raised, a checkpoint
    ///   moved past the segments' batches; of two collections with one name, the later is renamed.
    ///
    /// Takes the database's lock exclusively.
    /// - Throws: ``SextantError/Code/locked`` when another process has the database open;
    ///   ``SextantError/Code/corrupt`` when the manifest itself is unreadable (restore a backup or snapshot).
    public static func repair(at path: String, apply: Bool = false, configuration: Configuration = Configuration()) throws(SextantError) -> RepairReport {
        var config = configuration
        config.readOnly = false
        config.backgroundWork = false
        let path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard config.fileIO.isDirectory(path), config.fileIO.exists(path + "/CURRENT") else {
            throw SextantError(.notFound, "no database at \(path)")
        }
        var report = RepairReport()
        report.applied = apply
        var salvage: [String] = []
        do {
            let db = try Database.open(at: path, configuration: config, manifestOnly: true)
            defer { db.close() }
            var planner = RepairPlanner(db: db, io: config.fileIO, apply: apply)
            try planner.run()
            report = planner.report
            salvage = planner.salvage
        }
        guard apply, !salvage.isEmpty else { return report }
        // Second pass: replay every intact batch of the damaged logs and checkpoint it into segments.
        config.salvageDamagedLogs = true
        let db = try Database.open(at: path, configuration: config)
        defer { db.close() }
        for name in salvage {
            let c = try db.collection(name)
            try c.checkpointEverything()
            report.actions.append("collection '\(name)': wrote the salvaged batches to segments; the damaged logs are obsolete")
        }
        return report
    }
}

/// Works out (and, when applying, makes) the repairs of the first pass: everything but the log salvage.
private struct RepairPlanner {
    let db: Database
    let io: any FileIO
    let apply: Bool
    var report = RepairReport()
    /// Collections whose logs need the salvaging second pass.
    var salvage: [String] = []
    private var quarantine: String?
    private var dbPath: String { db.path }

    init(db: Database, io: any FileIO, apply: Bool) {
        self.db = db
        self.io = io
        self.apply = apply
        report.applied = apply
    }

    mutating func action(_ s: String) { report.actions.append(s) }

    /// Hard-links a damaged file into the quarantine directory (the original is then dropped from use by the
    /// manifest publish; the next open removes it).
    mutating func quarantine(_ file: String) throws(SextantError) {
        guard io.exists(file) else { return }
        let relative = String(file.dropFirst(dbPath.count + 1))
        report.quarantined.append(relative)
        guard apply else { return }
        if quarantine == nil {
            let stamp = Int(Date().timeIntervalSince1970)
            let dir = dbPath + "/quarantine/repair-\(stamp)-\(getpid())"
            if !io.exists(dbPath + "/quarantine") { try io.makeDirectoryDurably(dbPath + "/quarantine") }
            try io.makeDirectoryDurably(dir)
            quarantine = dir
            report.quarantineDirectory = dir
        }
        var target = quarantine!
        for part in relative.split(separator: "/").dropLast() {
            target += "/" + part
            if !io.exists(target) { try io.makeDirectoryDurably(target) }
        }
        target += "/" + relative.split(separator: "/").last!
        if io.exists(target) { return }
        try io.link(file, to: target)
        try io.syncDirectory(parentDirectory(of: target))
    }

    mutating func run() throws(SextantError) {
        var manifest = db.core.currentManifest
        let problems = manifest.inconsistencies()
        var changed = false
        // Manifest-level fixes first.
        var seenIDs = Set<UInt64>()
        var names = Set<String>()
        var keep: [Manifest.CollectionEntry] = []
        for (i, var entry) in manifest.collections.enumerated() {
            if !seenIDs.insert(entry.id).inserted {
                action("manifest: dropped a second entry for collection id \(entry.id) ('\(entry.name)'), which named the same directory")
                changed = true
                continue
            }
            if problems[i] != nil || names.contains(entry.name) {
                let fixed = try fixEntry(&entry, nextCollectionID: &manifest.nextCollectionID, names: names)
                changed = changed || fixed
            }
            names.insert(entry.name)
            keep.append(entry)
        }
        manifest.collections = keep
        for i in manifest.collections.indices {
            let fixed = try repairFiles(&manifest.collections[i])
            changed = changed || fixed
        }
        guard changed, apply else { return }
        let final = manifest
        try db.core.publish { m throws(SextantError) in
            m.nextCollectionID = final.nextCollectionID
            m.collections = final.collections
        }
    }

    /// Fixes what ``Manifest/inconsistencies()`` reports for one entry. Returns whether it changed.
    mutating func fixEntry(_ e: inout Manifest.CollectionEntry, nextCollectionID: inout UInt64, names: Set<String>) throws(SextantError) -> Bool {
        var changed = false
        let label = "collection '\(e.name)'"
        if (try? Database.validateName(e.name)) == nil || names.contains(e.name) {
            var n = 1
            var fresh = "repaired-\(e.id)"
            while names.contains(fresh) {
                n += 1
                fresh = "repaired-\(e.id)-\(n)"
            }
            action("manifest: \(label) renamed to '\(fresh)' (its name was invalid or taken)")
            e.name = fresh
            changed = true
        }
        if e.id >= nextCollectionID {
            nextCollectionID = e.id + 1
            action("manifest: nextCollectionID raised past \(label)'s id")
            changed = true
        }
        var seen = Set<UInt64>()
        let before = e.segments.count
        e.segments = e.segments.filter { seen.insert($0.id).inserted }
        if e.segments.count != before {
            action("manifest: \(label): merged \(before - e.segments.count) duplicate segment entries")
            changed = true
        }
        let maxSegment = e.segments.map(\.id).max() ?? 0
        if maxSegment >= e.nextSegmentID {
            e.nextSegmentID = maxSegment + 1
            action("manifest: \(label): nextSegmentID raised to \(e.nextSegmentID)")
            changed = true
        }
        let maxGeneration = e.segments.map { max($0.deletionGeneration, $0.payload ?? 0) }.max() ?? 0
        if maxGeneration >= e.nextDeletionGeneration {
            e.nextDeletionGeneration = maxGeneration + 1
            action("manifest: \(label): nextDeletionGeneration raised to \(e.nextDeletionGeneration)")
            changed = true
        }
        if e.firstLiveWALFile == 0 {
            e.firstLiveWALFile = 1
            changed = true
        }
        if let specs = e.payloadIndexes {
            var keys = Set<String>()
            let unique = specs.filter { keys.insert($0.key).inserted }
            if unique.count != specs.count {
                e.payloadIndexes = unique
                action("manifest: \(label): a field indexed twice is indexed once")
                changed = true
            }
        }
        return changed
    }

    /// Checks a collection's files and plans (or makes) their repair. Returns whether the entry changed.
    mutating func repairFiles(_ e: inout Manifest.CollectionEntry) throws(SextantError) -> Bool {
        guard (1...65536).contains(e.dimension) else {
            action("collection '\(e.name)': its dimension \(e.dimension) is impossible; it cannot be repaired (restore a backup)")
            return false
        }
        let dir = db.core.collectionDirectory(e.id)
        let label = "collection '\(e.name)'"
        var changed = false
        // Segments, in order (older first).
        var opened: [(index: Int, segment: Segment)] = []
        var kept: [Manifest.SegmentEntry] = []
        for s in e.segments {
            let path = dir + "/" + SegmentFile.name(s.id)
            var segment: Segment?
            var failure: SextantError?
            do throws(SextantError) {
                let seg = try Segment(io: io, path: path, expectedID: s.id)
                guard seg.rowCount == s.rows, seg.dimension == e.dimension, seg.metric == e.metric else {
                    throw SextantError(.corrupt, "\(path): does not match the manifest (rows, dimension or metric)")
                }
                try seg.verifyAll(releasingPages: true)
                segment = seg
            } catch {
                failure = error
            }
            guard let segment else {
                // Lost: its live rows. Ids when the key section can still be read.
                var ids: [String] = []
                var complete = false
                var rows: Int? = s.rows
                if let seg = try? Segment(io: io, path: path, expectedID: s.id), (try? seg.section(.keys)) != nil {
                    var deleted = Bitmap(count: seg.rowCount)
                    if s.deletionGeneration != 0 {
                        let dpath = dir + "/" + SegmentFile.deletionName(s.id, generation: s.deletionGeneration)
                        if let bytes = try? io.readFile(dpath), let d = try? DeletionFile.decode(bytes, path: dpath, segmentID: s.id, rowCount: seg.rowCount) {
                            deleted = d
                        }
                    }
                    rows = seg.rowCount - deleted.setCount
                    complete = true
                    for r in 0..<seg.rowCount where !deleted.contains(r) {
                        guard let id = try? seg.recordID(r) else { complete = false; continue }
                        if ids.count < 1000 { ids.append(id.description) } else { complete = false }
                    }
                }
                report.losses.append(.init(
                    collection: e.name, what: "segment \(SegmentFile.name(s.id)) (\(failure?.message ?? "damaged"))", records: rows,
                    ids: ids, idsComplete: complete))
                action("\(label): dropped damaged segment \(SegmentFile.name(s.id))")
                for name in [SegmentFile.name(s.id), HNSWFile.name(s.id), QuantizedVectors.name(s.id)]
                    + (s.deletionGeneration != 0 ? [SegmentFile.deletionName(s.id, generation: s.deletionGeneration)] : [])
                    + (s.payload.map { [PayloadIndexFile.name(s.id, generation: $0)] } ?? [])
                {
                    try quarantine(dir + "/" + name)
                }
                changed = true
                continue
            }
            if segment.maxSeq > e.checkpointSeq {
                action("\(label): checkpoint raised from \(e.checkpointSeq) to \(segment.maxSeq), the last batch segment \(SegmentFile.name(s.id)) holds")
                e.checkpointSeq = segment.maxSeq
                changed = true
            }
            var entry = s
            // Derived files: dropped when damaged, rebuilt by the next open.
            if s.graph == true {
                let gpath = dir + "/" + HNSWFile.name(s.id)
                var ok = false
                if let (graph, file) = try? HNSWFile.load(io: io, path: gpath, segmentID: s.id, rowCount: segment.rowCount) {
                    ok = withExtendedLifetime(graph) { (try? file.verify()) != nil }
                }
                if ok && s.quantized == true {
                    let qpath = dir + "/" + QuantizedVectors.name(s.id)
                    ok = (try? QuantizedVectors(io: io, path: qpath, segmentID: s.id, count: segment.rowCount, dimension: e.dimension))
                        .map { (try? $0.verify()) != nil } ?? false
                }
                if !ok {
                    action("\(label): dropped the damaged graph of segment \(SegmentFile.name(s.id)) (it is rebuilt on the next open)")
                    try quarantine(gpath)
                    try quarantine(dir + "/" + QuantizedVectors.name(s.id))
                    entry.graph = nil
                    entry.quantized = nil
                    changed = true
                }
            }
            if let g = s.payload {
                let ppath = dir + "/" + PayloadIndexFile.name(s.id, generation: g)
                let ok = (try? PayloadIndexReader(io: io, path: ppath, segmentID: s.id, rowCount: segment.rowCount)).map { (try? $0.verify()) != nil } ?? false
                if !ok {
                    action("\(label): dropped the damaged index file of segment \(SegmentFile.name(s.id)) (it is rebuilt on the next open)")
                    try quarantine(ppath)
                    entry.payload = nil
                    changed = true
                }
            }
            opened.append((kept.count, segment))
            kept.append(entry)
        }
        // Deletion files, checked once the segments that survive are known (recomputing marks needs them).
        for (i, segment) in opened {
            let s = kept[i]
            guard s.deletionGeneration != 0 else { continue }
            let dpath = dir + "/" + SegmentFile.deletionName(s.id, generation: s.deletionGeneration)
            if let bytes = try? io.readFile(dpath), (try? DeletionFile.decode(bytes, path: dpath, segmentID: s.id, rowCount: segment.rowCount)) != nil {
                continue
            }
            // Recompute: a row whose id a newer surviving segment holds was replaced.
            var marks = Bitmap(count: segment.rowCount)
            for r in 0..<segment.rowCount {
                guard let key = try? segment.key(r) else { continue }
                let k = Array(key)
                let hash = k.withUnsafeBytes { keyHash($0) }
                for (j, newer) in opened where j > i {
                    if let row = k.withUnsafeBytes({ (try? newer.find($0, hash: hash)) ?? nil }), row >= 0 {
                        marks.insert(r)
                        break
                    }
                }
            }
            let generation = e.nextDeletionGeneration
            e.nextDeletionGeneration += 1
            try quarantine(dpath)
            if apply {
                try io.writeFileAtomically(
                    dir + "/" + SegmentFile.deletionName(s.id, generation: generation),
                    DeletionFile.encode(marks, segmentID: s.id, rowCount: segment.rowCount))
            }
            kept[i].deletionGeneration = generation
            action("\(label): the deletion file of segment \(SegmentFile.name(s.id)) was damaged; \(marks.setCount) rows replaced by newer writes are marked deleted again")
            report.losses.append(.init(
                collection: e.name,
                what: "deletion marks of segment \(SegmentFile.name(s.id)): records deleted (not replaced) before may reappear; up to \(segment.rowCount - marks.setCount) rows are live again",
                records: nil, ids: [], idsComplete: false))
            changed = true
        }
        e.segments = kept
        // Logs: obsolete files still holding batches past the checkpoint are live again; damaged logs are salvaged.
        let walDir = dir + "/wal"
        let files = ((try? io.listDirectory(walDir)) ?? []).compactMap { WALFile.number(fromName: $0) }.sorted()
        for n in files where n < e.firstLiveWALFile {
            if WALReader.firstBatch(after: e.checkpointSeq, io: io, path: walDir + "/" + WALFile.name(n), fileNumber: n) != nil {
                action("\(label): log file \(WALFile.name(n)) holds batches after the checkpoint; it is replayed again (the manifest called it obsolete)")
                e.firstLiveWALFile = n
                changed = true
                break
            }
        }
        let live = files.filter { $0 >= e.firstLiveWALFile }
        var previous = e.checkpointSeq
        var expected = e.checkpointSeq + 1
        var damaged = false
        var salvaged = 0
        for (i, n) in live.enumerated() {
            let p = walDir + "/" + WALFile.name(n)
            guard let fd = try? io.open(p, flags: O_RDONLY, mode: 0) else { continue }
            defer { io.close(fd) }
            let size = Int((try? io.size(fd, path: p)) ?? 0)
            guard let map = try? io.mapReadOnly(fd, length: size, path: p) else { continue }
            defer { io.unmap(map) }
            let scan: WALReader.Scan
            do throws(SextantError) {
                scan = try WALReader.scan(map, path: p, fileNumber: n, isLastFile: i == live.count - 1, previousSeq: previous)
            } catch {
                action("\(label): log file \(WALFile.name(n)) is unreadable (\(error.message)); its batches are lost")
                report.losses.append(.init(collection: e.name, what: "log file \(WALFile.name(n)): \(error.message)", records: nil, ids: [], idsComplete: false))
                try quarantine(p)
                damaged = true
                continue
            }
            var intact = scan.records
            if let d = scan.damage, !d.isTornTail {
                damaged = true
                try quarantine(p)
                intact += d.intactAfter
                action("\(label): \(WALFile.name(n)) is damaged at offset \(d.offset); \(d.intactAfter.filter { $0.type == WALRecord.batchType }.count) intact batches after the damage are salvaged")
                // The batches between the last good record and the next intact one are lost.
                let next = d.intactAfter.first { $0.type == WALRecord.batchType }?.seq
                let firstLost = (scan.lastSeq ?? previous) + 1
                let lastLost = next.map { $0 - 1 }
                let ids = Self.readableIDs(map, from: d.offset, end: d.intactAfter.first?.offset ?? size, version: scan.version)
                let range = lastLost.map { $0 >= firstLost ? (firstLost == $0 ? "batch \(firstLost)" : "batches \(firstLost)–\($0)") : "" }
                    ?? "batch \(firstLost) and any after it"
                if !range.isEmpty {
                    report.losses.append(.init(
                        collection: e.name, what: "\(range) in \(WALFile.name(n)) at offset \(d.offset) (\(d.problem))", records: nil,
                        ids: ids, idsComplete: false))
                }
            }
            for r in intact where r.type == WALRecord.batchType && r.seq > e.checkpointSeq {
                salvaged += 1
                if r.seq > expected {
                    let missing = r.seq - expected
                    if !report.losses.contains(where: { $0.collection == e.name && $0.what.contains(WALFile.name(n)) }) {
                        report.losses.append(.init(
                            collection: e.name, what: "\(missing) batch(es) before sequence \(r.seq) are missing from the log (\(WALFile.name(n)))",
                            records: nil, ids: [], idsComplete: false))
                    }
                }
                expected = max(expected, r.seq + 1)
            }
            previous = max(previous, intact.filter { $0.type == WALRecord.batchType }.map(\.seq).max() ?? previous)
        }
        if damaged {
            salvage.append(e.name)
            report.salvagedBatches[e.name] = salvaged
        }
        return changed
    }

    /// Ids that can still be read from the ops of a damaged batch record (best effort, for the report).
    static func readableIDs(_ map: UnsafeRawBufferPointer, from offset: Int, end: Int, version: UInt32) -> [String] {
        let hs = WALRecord.headerSize(version: version)
        guard offset + hs + 4 <= end, end <= map.count else { return [] }
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: map[(offset + hs)..<end]), what: "")
        guard let count = try? r.u32() else { return [] }
        var ids: [String] = []
        for _ in 0..<min(Int(count), 1000) {
            guard let kind = try? r.u8(), kind == 1 || kind == 2, let keyLen = try? r.u16(), let key = try? r.bytes(Int(keyLen)),
                let id = RecordID(key: key)
            else { break }
            ids.append(id.description)
            if kind == 2 { continue }
            guard let dim = try? r.u32(), (try? r.bytes(Int(dim) * 4)) != nil, let metaLen = try? r.u32(), (try? r.bytes(Int(metaLen))) != nil,
                let hasDoc = try? r.u8()
            else { break }
            if hasDoc == 1 {
                guard let docLen = try? r.u32(), (try? r.bytes(Int(docLen))) != nil else { break }
            }
        }
        return ids
    }
}
