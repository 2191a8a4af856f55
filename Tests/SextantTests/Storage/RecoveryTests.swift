// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// The post-crash states a crash can leave, built directly (torn records, flipped bytes, leftover files),
/// then reopened.
@Suite struct RecoveryTests {
    /// Writes `batches` batches of 3 records each to collection "c" (and one batch to "other"), closes,
    /// and returns the WAL file of "c".
    func makeDatabase(_ path: String, batches: Int) throws -> String {
        let db = try Database.open(at: path)
        let c = try db.createCollection("c", dimension: 4, metric: .dot)
        for b in 0..<batches {
            try c.upsert((0..<3).map { Record(id: .int(UInt64(b * 3 + $0)), vector: [1, 2, 3, Float(b)], metadata: ["b": .int(Int64(b))]) })
        }
        try db.createCollection("other", dimension: 2).upsert(.string("x"), vector: [1, 1])
        db.close()
        let walDir = path + "/collections/0000000000000001/wal"
        let files = try FileManager.default.contentsOfDirectory(atPath: walDir).sorted()
        return walDir + "/" + files.last!
    }

    /// Offsets of the batch records (a clean close's durability mark left out).
    func recordOffsets(_ wal: String) throws -> [Int] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: wal)))
        return data.withUnsafeBytes { map in
            var offsets: [Int] = []
            var o = WALFile.headerSize
            while let r = WALReader.intactRecord(map, at: o, version: WALFile.version) {
                if r.type == WALRecord.batchType { offsets.append(o) }
                o = r.end
            }
            return offsets
        }
    }

    @Test func tornTailAtEveryByteOfTheLastRecordRecoversThePrefix() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let wal = try makeDatabase(dir.sub("db"), batches: 4)
        let offsets = try recordOffsets(wal)
        let original = try Data(contentsOf: URL(fileURLWithPath: wal))
        #expect(offsets.count == 4)
        let lastStart = offsets[3]
        for cut in stride(from: lastStart, to: original.count, by: 1) {
            try original.prefix(cut).write(to: URL(fileURLWithPath: wal))
            let db = try Database.open(at: dir.sub("db"))
            #expect(try db.collection("c").count() == 9, "cut at \(cut)")
            try db.collection("c").upsert(.int(100), vector: [0, 0, 0, 1])  // appends after the cut
            #expect(try db.collection("c").count() == 10)
            try db.collection("c").delete([.int(100)])
            db.close()
            // The torn bytes are gone for good: the file was truncated before anything was appended.
            let db2 = try Database.open(at: dir.sub("db"))
            #expect(try db2.collection("c").count() == 9)
            db2.close()
            // Restore for the next cut: fresh database.
            try FileManager.default.removeItem(atPath: dir.sub("db"))
            _ = try makeDatabase(dir.sub("db"), batches: 4)
            if cut > lastStart + 40 { break }  // header bytes, then a sample of the payload is enough
        }
    }

    @Test func zeroFilledTailIsATornTail() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let wal = try makeDatabase(dir.sub("db"), batches: 3)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: wal))
        h.seekToEndOfFile()
        h.write(Data(count: 4096))
        try h.close()
        let db = try Database.open(at: dir.sub("db"))
        #expect(try db.collection("c").count() == 9)
        db.close()
    }

    @Test(arguments: [0, 4, 9, 20, 40])  // length, crc, seq, type/payload bytes of the first record
    func flippedByteInTheMiddleOfTheLogIsReportedWithFileAndOffset(byte: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let wal = try makeDatabase(dir.sub("db"), batches: 5)
        let offsets = try recordOffsets(wal)
        var data = try Data(contentsOf: URL(fileURLWithPath: wal))
        data[offsets[1] + byte] ^= 0x40
        try data.write(to: URL(fileURLWithPath: wal))

        let db = try Database.open(at: dir.sub("db"))
        // The damaged collection reports the file and offset; the other one still works.
        do {
            _ = try db.collection("c")
            Issue.record("opening a collection with a corrupt log must fail")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.message.contains(wal) && error.message.contains("offset \(offsets[1])"), "\(error.message)")
        }
        #expect(try db.collection("other").count() == 1)
        db.close()
        let report = try Database.verify(at: dir.sub("db"))
        #expect(!report.isClean)
        #expect(report.problems.contains { $0.contains(wal) })
    }

    @Test func flippedByteInASegmentIsDetectedAndNamed() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        do {
            let db = try Database.open(at: path)
            let c = try db.createCollection("c", dimension: 16, metric: .cosine)
            try c.upsert(randomVectors(500, dimension: 16, seed: 4).enumerated().map { Record(id: .int(UInt64($0.offset)), vector: $0.element) })
            try c.flush()
            db.close()
        }
        #expect(try Database.verify(at: path).isClean)
        let seg = path + "/collections/0000000000000001/0000000000000001.seg"
        var data = try Data(contentsOf: URL(fileURLWithPath: seg))
        data[64 + 1000] ^= 0x01  // inside the vectors section
        try data.write(to: URL(fileURLWithPath: seg))

        let report = try Database.verify(at: path)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.contains(seg) == true && report.problems.first?.contains("vectors") == true, "\(report.problems)")
        // Searching reports it instead of returning damaged data.
        let db = try Database.open(at: path)
        do {
            _ = try db.collection("c").search(randomVectors(1, dimension: 16, seed: 1)[0])
            Issue.record("search over a corrupt segment must fail")
        } catch {
            #expect(error.code == .corrupt && error.message.contains(seg))
        }
        db.close()

        // A damaged header makes the collection unavailable, with the file named.
        data[10] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: seg))
        let db2 = try Database.open(at: path)
        #expect(db2.unavailableCollections()["c"]?.message.contains(seg) == true)
        db2.close()
    }

    @Test func damagedManifestIsReported() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try makeDatabase(dir.sub("db"), batches: 1)
        let current = try String(contentsOfFile: dir.sub("db/CURRENT"), encoding: .utf8).trimmingCharacters(in: .newlines)
        var data = try Data(contentsOf: URL(fileURLWithPath: dir.sub("db/" + current)))
        data[30] ^= 0x20
        try data.write(to: URL(fileURLWithPath: dir.sub("db/" + current)))
        do {
            _ = try Database.open(at: dir.sub("db"))
            Issue.record("a corrupt manifest must be reported")
        } catch {
            #expect(error.code == .corrupt && error.message.contains(current))
        }
    }

    @Test func filesNoManifestNamesAreRemovedOnOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        _ = try makeDatabase(path, batches: 2)
        let cdir = path + "/collections/0000000000000001"
        for junk in [cdir + "/00000000000000aa.seg", cdir + "/00000000000000aa.seg.tmp", cdir + "/wal/0000000000000000.log",
                     path + "/MANIFEST-00000000000000ff.tmp", path + "/CURRENT.tmp"] {
            FileManager.default.createFile(atPath: junk, contents: Data([1, 2, 3]))
        }
        try FileManager.default.createDirectory(atPath: path + "/collections/00000000000000ee", withIntermediateDirectories: true)
        let db = try Database.open(at: path)
        #expect(try db.collection("c").count() == 6)
        db.close()
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: cdir + "/00000000000000aa.seg"))
        #expect(!fm.fileExists(atPath: cdir + "/00000000000000aa.seg.tmp"))
        #expect(!fm.fileExists(atPath: cdir + "/wal/0000000000000000.log"))
        #expect(!fm.fileExists(atPath: path + "/MANIFEST-00000000000000ff.tmp"))
        #expect(!fm.fileExists(atPath: path + "/collections/00000000000000ee"))
    }

    @Test func intervalDurabilityKeepsWritesAcrossReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.durability = .interval(milliseconds: 20)
        do {
            let db = try Database.open(at: dir.path, configuration: config)
            let c = try db.createCollection("c", dimension: 2)
            for i in 0..<200 { try c.upsert(.int(UInt64(i)), vector: [1, Float(i)]) }
            db.close()
        }
        let db = try Database.open(at: dir.path)
        #expect(try db.collection("c").count() == 200)
        db.close()
    }

    @Test func secondOpenInTheSameProcessIsLockedToo() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.path)
        #expect(throws: SextantError.self) { _ = try Database.open(at: dir.path) }
        db.close()
        let again = try Database.open(at: dir.path)
        again.close()
    }
}

@Suite struct RecoveryLogNumberingTests {
    /// A crash after a flush published its manifest but before the old log files were deleted leaves
    /// only files numbered below `firstLiveWALFile`. The next log file must still be numbered at or above
    /// it, or a later recovery would skip it.
    @Test func newLogAfterLeftoverOldFilesIsStillReplayed() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let walDir = dir.path + "/collections/0000000000000001/wal"
        do {
            let db = try Database.open(at: dir.path)
            let c = try db.createCollection("c", dimension: 2)
            try c.upsert(.int(1), vector: [1, 0])
            try c.flush()
            db.close()
        }
        // Simulate the leftover: recreate an old, already-checkpointed log file and remove the live ones.
        let live = try FileManager.default.contentsOfDirectory(atPath: walDir)
        for f in live { try FileManager.default.removeItem(atPath: walDir + "/" + f) }
        FileManager.default.createFile(atPath: walDir + "/" + WALFile.name(1), contents: Data(WALFile.header(fileNumber: 1)))
        do {
            let db = try Database.open(at: dir.path)
            try db.collection("c").upsert(.int(2), vector: [0, 1])
            db.close()
        }
        let db = try Database.open(at: dir.path)
        #expect(try db.collection("c").count() == 2)
        db.close()
    }
}

/// Reopening with a smaller memtable than the one that wrote the log (a tuning change, or a different
/// machine) replays batches larger than the table. The checkpoint published by the flushes that follow must
/// only move forward: an empty table frozen ahead of such a batch once published checkpoint 0 over segments
/// holding later batches, and the next open refused the collection as corrupt.
@Suite struct CheckpointOrderTests {
    func open(_ path: String, memtableBytes: Int) throws -> Database {
        var config = Configuration()
        config.memtableBytes = memtableBytes
        return try Database.open(at: path, configuration: config)
    }

    func checkpoint(_ db: Database) -> UInt64 {
        db.core.currentManifest.collections.first { $0.name == "c" }!.checkpointSeq
    }

    @Test func reopeningWithASmallerMemtableNeverMovesTheCheckpointBack() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        let big = 64 << 20, small = 4 * 4 * 100  // 256 rows (the floor) of 4 floats
        var db = try open(path, memtableBytes: big)
        var c = try db.createCollection("c", dimension: 4, metric: .euclidean)
        func batch(_ b: Int, rows: Int = 1_000) -> [Record] {
            (0..<rows).map { Record(id: .int(UInt64(b * 1_000 + $0)), vector: [Float(b), Float($0), 1, 2]) }
        }
        // Batches 1–2 in a segment (checkpoint 2); batch 3, larger than the small table, and a delete-only
        // batch 4 only in the log.
        try c.upsert(batch(0))
        try c.upsert(batch(1))
        try c.flush()
        #expect(checkpoint(db) == 2)
        try c.upsert(batch(2))
        #expect(try c.delete([.int(0), .int(1)]) == 2)
        db.close()
        var expected = 2_998
        var last: UInt64 = 2
        for round in 0..<4 {
            db = try open(path, memtableBytes: round % 2 == 0 ? small : big)
            c = try db.collection("c")
            // Let the background flushes of the replayed tables finish, then look at what they published.
            try c.runOptimizerNow {}
            #expect(checkpoint(db) >= last, "round \(round): checkpoint moved back from \(last) to \(checkpoint(db))")
            last = checkpoint(db)
            #expect(try c.count() == expected, "round \(round)")
            if round == 1 {
                // An empty table enlarged for a big batch keeps the sequence of a delete-only batch before it.
                _ = try c.delete([.int(2)])
                try c.upsert(batch(10, rows: 600))
                expected += 599
            }
            db.close()
            let report = try Database.verify(at: path)
            #expect(report.problems.isEmpty, "round \(round): \(report.problems)")
        }
        db = try open(path, memtableBytes: small)
        #expect(try db.collection("c").count() == expected)
        #expect(try db.collection("c").get([.int(2)]).isEmpty)
        try db.collection("c").flush()
        db.close()
        let report = try Database.verify(at: path)
        #expect(report.problems.isEmpty, "\(report.problems)")
    }
}
