// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Damage that must be reported, never silently cut: the attacks of issue 10 on the last log file, a
/// read-only `verify`, opening up to the damage, `repair`, and manifests that are checksum-valid but
/// inconsistent.
@Suite struct LogDamageTests {
    static let dimension = 4

    /// A database with collection "c" (one batch of `perBatch` records per batch, closed cleanly unless
    /// `crash`) and collection "other". Returns the path of c's log.
    @discardableResult
    func makeDatabase(_ path: String, batches: Int, perBatch: Int = 1, crash: Bool = false) throws -> String {
        let db = try Database.open(at: path)
        let c = try db.createCollection("c", dimension: Self.dimension, metric: .euclidean)
        for b in 0..<batches {
            try c.upsert((0..<perBatch).map { j in
                let i = b * perBatch + j
                return Record(id: .int(UInt64(i)), vector: [1, 2, 3, Float(i)], metadata: ["i": .int(Int64(i))], document: "doc \(i)")
            })
        }
        try db.createCollection("other", dimension: 2).upsert(.string("x"), vector: [1, 1])
        db.close()
        let log = try logPath(path)
        if crash {
            // A crash leaves no durability mark: cut the log back to its last batch.
            let offsets = try recordOffsets(log)
            try truncate(log, to: offsets.last!.end)
        }
        return log
    }

    func logPath(_ db: String) throws -> String {
        let walDir = db + "/collections/0000000000000001/wal"
        let files = try FileManager.default.contentsOfDirectory(atPath: walDir).filter { $0.hasSuffix(".log") }.sorted()
        return walDir + "/" + files.last!
    }

    /// Batch records (offset, end) of a version 2 log, the durability mark excluded.
    func recordOffsets(_ log: String) throws -> [(offset: Int, end: Int)] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: log)))
        return data.withUnsafeBytes { map in
            var out: [(Int, Int)] = []
            var o = WALFile.headerSize
            while let r = WALReader.intactRecord(map, at: o, version: 2) {
                if r.type == WALRecord.batchType { out.append((r.offset, r.end)) }
                o = r.end
            }
            return out
        }
    }

    func modify(_ path: String, _ body: (inout [UInt8]) -> Void) throws {
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        body(&data)
        try Data(data).write(to: URL(fileURLWithPath: path))
    }

    func truncate(_ path: String, to size: Int) throws {
        try modify(path) { $0.removeSubrange(size...) }
    }


    /// The issue's reproduction: three batches of one record, the first two damaged, the third intact.
    @Test func damageFollowedByAnIntactRecordIsCorruptionAndVerifyChangesNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        let log = try makeDatabase(path, batches: 3, crash: true)
        let offsets = try recordOffsets(log)
        #expect(offsets.count == 3)
        try modify(log) { d in
            d[offsets[0].offset + 37] ^= 0xFF
            d[offsets[1].offset + 29] ^= 0xFF
        }
        let before = try fileContents(under: path)
        let report = try Database.verify(at: path)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.contains(log) == true && report.problems.first?.contains("offset \(offsets[0].offset)") == true, "\(report.problems)")
        // verify is read-only: every byte of every file is as it was, the log is still there.
        #expect(try fileContents(under: path) == before)

        let db = try Database.open(at: path)
        do {
            _ = try db.collection("c")
            Issue.record("a log with damage followed by an intact record must not open")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.message.contains(log) && error.message.contains("offset \(offsets[0].offset)"))
        }
        #expect(try db.collection("other").count() == 1)
        db.close()
        // Opening did not cut anything either.
        #expect(try Data(contentsOf: URL(fileURLWithPath: log)) == before[String(log.dropFirst(path.count + 1))])

        // Up to the damage, on request: nothing (the first record is damaged), read-only.
        var config = Configuration()
        config.readDamagedCollections = true
        let damaged = try Database.open(at: path, configuration: config)
        let c = try damaged.collection("c")
        #expect(try c.count() == 0)
        #expect(c.damage?.code == .corrupt)
        do {
            try c.upsert(.int(9), vector: [1, 1, 1, 1])
            Issue.record("a damaged collection must refuse writes")
        } catch {
            #expect(error.code == .corrupt && error.message.contains("repair"))
        }
        damaged.close()

        // repair: a dry run changes nothing; --apply salvages record 2 (id 2) and reports batches 1–2 lost.
        let dry = try Database.repair(at: path)
        #expect(!dry.applied && !dry.isClean)
        #expect(try fileContents(under: path) == before)
        let applied = try Database.repair(at: path, apply: true)
        #expect(applied.applied)
        #expect(applied.losses.contains { $0.collection == "c" && $0.what.contains("batches 1–2") }, "\(applied.losses)")
        #expect(applied.salvagedBatches["c"] == 1)
        #expect(applied.quarantineDirectory.map { FileManager.default.fileExists(atPath: $0 + "/collections/0000000000000001/wal") } == true)
        #expect(try Database.verify(at: path).isClean)
        do {
            let repaired = try Database.open(at: path)
            defer { repaired.close() }
            let got = try repaired.collection("c").get([.int(0), .int(1), .int(2)])
            #expect(got.map(\.id) == [.int(2)])
            #expect(got.first?.vector == [1, 2, 3, 2] && got.first?.document == "doc 2")
            #expect(try repaired.collection("other").count() == 1)
            try repaired.collection("c").upsert(.int(7), vector: [0, 0, 0, 7])
        }
        // Nothing is left to repair, and the collection takes writes again.
        let again = try Database.repair(at: path)
        #expect(again.isClean, "\(again.actions)")
    }

    /// A cleanly closed log ends with a durability mark, so damage to its last batch is corruption.
    @Test func aFlipInTheLastBatchOfACleanlyClosedLogIsCorruption() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        let log = try makeDatabase(path, batches: 5)
        let last = try recordOffsets(log).last!
        for position in [last.offset, last.offset + 4, last.offset + 9, last.offset + 30, last.end - 1] {
            try? FileManager.default.removeItem(atPath: path)
            try makeDatabase(path, batches: 5)
            try modify(log) { $0[position] ^= 0x10 }
            let report = try Database.verify(at: path)
            #expect(report.problems.count == 1 && report.problems[0].contains(log), "flip at \(position): \(report.problems)")
            let db = try Database.open(at: path)
            #expect(db.unavailableCollections()["c"]?.code == .corrupt, "flip at \(position)")
            db.close()
        }
    }

    /// 4 KiB zeroed in the middle of the last (large) batch: corruption when the log was closed cleanly; after
    /// a crash it is indistinguishable from a write the power cut tore, so it is cut — a batch that was never
    /// shown durable — and verify says so in a note.
    @Test func aZeroedRangeInTheLastBatch() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        for crash in [false, true] {
            let path = dir.sub("db-\(crash)")
            let log = try makeDatabase(path, batches: 3, perBatch: 400, crash: crash)
            let last = try recordOffsets(log).last!
            #expect(last.end - last.offset > 12_000)
            try modify(log) { d in for i in (last.offset + 4096)..<(last.offset + 8192) { d[i] = 0 } }
            let report = try Database.verify(at: path)
            let db = try Database.open(at: path)
            defer { db.close() }
            if crash {
                #expect(report.isClean && report.notes.contains { $0.contains(log) && $0.contains("crash") }, "\(report)")
                #expect(try db.collection("c").count() == 800)
            } else {
                #expect(report.problems.count == 1, "\(report)")
                #expect(db.unavailableCollections()["c"]?.code == .corrupt)
            }
        }
    }

    /// A torn tail (a crash mid-append) is cut by an open for writing, noted (not a problem) by verify, left
    /// in place by verify and by read-only opens.
    @Test func aTornTailIsACrashArtifact() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        let log = try makeDatabase(path, batches: 4, crash: true)
        let last = try recordOffsets(log).last!
        try truncate(log, to: last.offset + 20)
        let before = try fileContents(under: path)
        let report = try Database.verify(at: path)
        #expect(report.isClean && report.notes.count == 1 && report.notes[0].contains("offset \(last.offset)"), "\(report)")
        var ro = Configuration()
        ro.readOnly = true
        do {
            let db = try Database.open(at: path, configuration: ro)
            #expect(try db.collection("c").count() == 3)
            #expect(throws: SextantError.self) { try db.collection("c").upsert(.int(50), vector: [0, 0, 0, 1]) }
            db.close()
        }
        #expect(try fileContents(under: path) == before)
        let db = try Database.open(at: path)
        #expect(try db.collection("c").count() == 3)
        db.close()
        #expect((try Data(contentsOf: URL(fileURLWithPath: log))).count == last.offset)
    }

    /// Property, seeded: whatever single damage hits a cleanly closed log — a flipped byte, a zeroed range, a
    /// truncation — opening either reports corruption naming the file, or gives every batch whose record lies
    /// wholly before the damage and nothing that was not written; a flip or zeroed range inside a batch is
    /// always reported.
    @Test(arguments: 0..<4)
    func randomDamageIsReportedOrLeavesAnExactPrefix(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var rng = RepeatableRandomNumberGenerator(seed: seed)
        let template = dir.sub("template")
        let log = try makeDatabase(template, batches: 12, perBatch: 3)
        let offsets = try recordOffsets(log)
        let size = try Data(contentsOf: URL(fileURLWithPath: log)).count
        for round in 0..<25 {
            let path = dir.sub("db-\(round)")
            try FileManager.default.copyItem(atPath: template, toPath: path)
            let target = path + log.dropFirst(template.count)
            let kind = Int.random(in: 0..<3, using: &rng)
            let at = Int.random(in: WALFile.headerSize..<size, using: &rng)
            switch kind {
            case 0: try modify(target) { $0[at] ^= UInt8.random(in: 1...255, using: &rng) }
            case 1: try modify(target) { d in for i in at..<min(size, at + Int.random(in: 1...600, using: &rng)) { d[i] = 0 } }
            default: try truncate(target, to: at)
            }
            let whole = offsets.filter { $0.end <= at }.count
            // A zeroed range may only cover bytes that were zero already: then nothing was damaged.
            let changed = try Data(contentsOf: URL(fileURLWithPath: target)) != Data(contentsOf: URL(fileURLWithPath: log))
            let insideABatch = changed && offsets.contains { $0.offset <= at && at < $0.end }
            let db = try Database.open(at: path)
            defer { db.close() }
            if let error = db.unavailableCollections()["c"] {
                #expect(error.code == .corrupt && error.message.contains(WALFile.name(1)), "round \(round): \(error.message)")
                #expect(kind != 2, "round \(round): a truncation is a crash artifact, not corruption")
            } else {
                let c = try db.collection("c")
                let n = try c.count()
                #expect(kind == 2 || !insideABatch, "round \(round): damage (\(kind)) inside a batch at \(at) was not reported; \(n) records")
                #expect(n >= whole * 3 && n % 3 == 0 && n <= 36, "round \(round): \(n) records, \(whole) whole batches before the damage")
                for r in try c.get((0..<n).map { .int(UInt64($0)) }) {
                    guard case .int(let i) = r.id else { continue }
                    #expect(r.vector == [1, 2, 3, Float(i)])
                }
            }
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}

/// Checksum-valid manifests that contradict themselves or the files, and damaged segments, deletion files and
/// graphs: reported, never trusted; `repair` fixes what can be fixed and says what was lost.
@Suite struct ManifestAndSegmentDamageTests {
    /// A database with collections "a" (two flushed segments, one with deletions, graphs) and "b".
    func makeDatabase(_ path: String) throws {
        let db = try Database.open(at: path)
        var index = IndexConfiguration()
        index.minimumRowsForGraph = 16
        let a = try db.createCollection("a", dimension: 8, metric: .cosine, index: index)
        let vectors = randomVectors(120, dimension: 8, seed: 3)
        try a.upsert((0..<60).map { Record(id: .int(UInt64($0)), vector: vectors[$0], metadata: ["n": .int(Int64($0))]) })
        try a.flush()
        try a.upsert((60..<120).map { Record(id: .int(UInt64($0)), vector: vectors[$0]) })
        try a.upsert((0..<10).map { Record(id: .int(UInt64($0)), vector: vectors[$0 + 100]) })  // replaces rows of segment 1
        try a.flush()
        try a.waitForIndexing()
        try db.createCollection("b", dimension: 2).upsert(.string("x"), vector: [1, 1])
        db.close()
    }

    /// Rewrites the current manifest through `edit`, with a valid checksum (as a crafted file would have).
    func editManifest(_ path: String, _ edit: (inout Manifest) -> Void) throws {
        let name = try String(contentsOfFile: path + "/CURRENT", encoding: .utf8).trimmingCharacters(in: .newlines)
        var m = try Manifest.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path + "/" + name))), path: name)
        edit(&m)
        try Data(try m.encoded()).write(to: URL(fileURLWithPath: path + "/" + name))
    }

    @Test func duplicateNamesHideNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        try editManifest(path) { m in m.collections[1].name = "a" }
        let report = try Database.verify(at: path)
        #expect(report.problems.count == 2 && report.problems.allSatisfy { $0.contains("collections 'a'") }, "\(report.problems)")
        do {
            let db = try Database.open(at: path)
            #expect(db.unavailableCollections()["a"]?.code == .corrupt)
            db.close()
        }
        let repaired = try Database.repair(at: path, apply: true)
        #expect(repaired.actions.contains { $0.contains("renamed") }, "\(repaired.actions)")
        let db = try Database.open(at: path)
        defer { db.close() }
        #expect(db.unavailableCollections().isEmpty)
        #expect(try db.collection("a").count() == 120)
        #expect(db.collectionNames().count == 2)
    }

    @Test func aDuplicatedSegmentEntryDoesNotDoubleTheCount() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        try editManifest(path) { m in m.collections[0].segments.append(m.collections[0].segments[0]) }
        do {
            let db = try Database.open(at: path)
            #expect(db.unavailableCollections()["a"]?.message.contains("listed twice") == true)
            #expect(try db.collection("b").count() == 1)
            db.close()
        }
        _ = try Database.repair(at: path, apply: true)
        let db = try Database.open(at: path)
        defer { db.close() }
        #expect(try db.collection("a").count() == 120)
        let hits = try db.collection("a").search(randomVectors(1, dimension: 8, seed: 9)[0], limit: 50)
        #expect(Set(hits.map(\.id)).count == hits.count)
    }

    /// A raised `firstLiveWALFile` would make recovery delete logs holding unflushed batches.
    @Test func aRaisedFirstLiveLogFileDeletesNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        do {
            let db = try Database.open(at: path)
            try db.collection("a").upsert(.int(500), vector: [1, 2, 3, 4, 5, 6, 7, 8])  // only in the log
            db.close()
        }
        try editManifest(path) { m in m.collections[0].firstLiveWALFile += 50 }
        let walDir = path + "/collections/0000000000000001/wal"
        let logs = try FileManager.default.contentsOfDirectory(atPath: walDir)
        do {
            let db = try Database.open(at: path)
            #expect(db.unavailableCollections()["a"]?.code == .corrupt)
            db.close()
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: walDir) == logs)
        _ = try Database.repair(at: path, apply: true)
        let db = try Database.open(at: path)
        defer { db.close() }
        #expect(try db.collection("a").get([.int(500)]).count == 1)
        #expect(try db.collection("a").count() == 121)
    }

    @Test func aSegmentPastTheCheckpointIsInconsistent() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        try editManifest(path) { m in m.collections[0].checkpointSeq = 1 }
        let db = try Database.open(at: path)
        defer { db.close() }
        #expect(db.unavailableCollections()["a"]?.message.contains("past the manifest's checkpoint") == true)
    }

    @Test func aDamagedSegmentIsQuarantinedAndItsRecordsListed() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let seg = path + "/collections/0000000000000001/0000000000000002.seg"
        var data = try Data(contentsOf: URL(fileURLWithPath: seg))
        data[64 + 100] ^= 0x04  // the vectors section
        try data.write(to: URL(fileURLWithPath: seg))
        let dry = try Database.repair(at: path)
        #expect(dry.quarantined == ["collections/0000000000000001/0000000000000002.seg"] + dry.quarantined.dropFirst())
        let loss = try #require(dry.losses.first)
        // Segment 2 holds ids 60…119 and the new versions of 0…9.
        #expect(loss.records == 70 && loss.idsComplete && Set(loss.ids) == Set(((0..<10).map { $0 } + (60..<120).map { $0 }).map(String.init)))
        let applied = try Database.repair(at: path, apply: true)
        #expect(FileManager.default.fileExists(atPath: applied.quarantineDirectory! + "/collections/0000000000000001/0000000000000002.seg"))
        #expect(try Database.verify(at: path).isClean)
        let db = try Database.open(at: path)
        defer { db.close() }
        // Segment 1's rows 10…59 survive; the old versions of 0…9 stay deleted (a newer write replaced them).
        #expect(try db.collection("a").count() == 50)
        #expect(try db.collection("a").get([.int(5)]).isEmpty)
    }

    @Test func aDamagedDeletionFileIsRecomputedFromNewerSegments() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let cdir = path + "/collections/0000000000000001"
        let del = try #require(try FileManager.default.contentsOfDirectory(atPath: cdir).first { $0.hasSuffix(".del") })
        var data = try Data(contentsOf: URL(fileURLWithPath: cdir + "/" + del))
        data[33] ^= 0x01
        try data.write(to: URL(fileURLWithPath: cdir + "/" + del))
        #expect(try Database.verify(at: path).problems.contains { $0.contains(del) })
        let report = try Database.repair(at: path, apply: true)
        #expect(report.actions.contains { $0.contains("10 rows replaced by newer writes") }, "\(report.actions)")
        let db = try Database.open(at: path)
        defer { db.close() }
        #expect(try db.collection("a").count() == 120)
        // One live row per id: the newer versions of 0…9.
        let v = randomVectors(120, dimension: 8, seed: 3)
        #expect(try db.collection("a").get([.int(3)]).first?.vector == v[103])
    }

    @Test func aDamagedGraphIsDroppedAndRebuilt() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let graph = path + "/collections/0000000000000001/0000000000000001.hnsw"
        var data = try Data(contentsOf: URL(fileURLWithPath: graph))
        data[200] ^= 0x01
        try data.write(to: URL(fileURLWithPath: graph))
        #expect(try Database.verify(at: path).problems.contains { $0.contains(".hnsw") })
        let report = try Database.repair(at: path, apply: true)
        #expect(report.losses.isEmpty && report.actions.contains { $0.contains("graph") })
        let db = try Database.open(at: path)
        defer { db.close() }
        try db.collection("a").waitForIndexing()
        #expect(try db.collection("a").info().indexedRows == 120 + 10)
        db.close()
        #expect(try Database.verify(at: path).isClean)
    }

    /// A read-only file system: read-only opens and verify work; an open for writing fails with a clear error.
    @Test func aReadOnlyFileSystemCanBeOpenedReadOnly() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let io = FaultyFileIO()
        io.arm(.readOnlyFileSystem)
        var config = Configuration.withFileIO(io)
        config.readOnly = true
        let db = try Database.open(at: path, configuration: config)
        #expect(try db.collection("a").count() == 120)
        #expect(try db.collection("a").search(randomVectors(1, dimension: 8, seed: 1)[0], limit: 3).count == 3)
        do {
            try db.collection("a").upsert(.int(1000), vector: [1, 1, 1, 1, 1, 1, 1, 1])
            Issue.record("writes must fail on a read-only open")
        } catch {
            #expect(error.code == .readOnly)
        }
        #expect(throws: SextantError.self) { try db.createCollection("z", dimension: 2) }
        db.close()
        #expect(try Database.verify(at: path, configuration: .withFileIO(io)).isClean)
        #expect(io.triggered.load(ordering: .relaxed) == 0, "a read-only open tried to change the file system")
        do {
            _ = try Database.open(at: path, configuration: .withFileIO(io))
            Issue.record("an open for writing on a read-only file system must fail")
        } catch {
            #expect(error.message.contains("Read-only file system"), "\(error.message)")
        }
    }

    @Test func verifyIsLockedOutByAWriterNotCorrupt() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let writer = try Database.open(at: path)
        defer { writer.close() }
        do {
            _ = try Database.verify(at: path)
            Issue.record("verify must not run while a writer has the database")
        } catch {
            #expect(error.code == .locked && error.message.contains("locked"))
        }
    }
}
