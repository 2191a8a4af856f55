// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Failed writes and fsyncs through the FileIO seam: the failing operation reports a clear error, nothing
/// acknowledged is lost, and the database opens afterwards with every acknowledged record.
@Suite struct FaultInjectionTests {
    func records(_ range: Range<Int>) -> [Record] {
        range.map { Record(id: .int(UInt64($0)), vector: [Float($0), 1, 2], metadata: ["i": .int(Int64($0))], document: "d\($0)") }
    }

    func reopenAndCheck(_ path: String, expected: Set<Int>) throws {
        let db = try Database.open(at: path)
        defer { db.close() }
        let c = try db.collection("c")
        #expect(try c.count() == expected.count)
        let got = try c.get((0..<200).map { .int(UInt64($0)) })
        #expect(Set(got.map { Int($0.id.description)! }) == expected)
        for r in got { #expect(r.vector == [Float(Int(r.id.description)!), 1, 2]) }
    }

    @Test(arguments: [
        FaultyFileIO.Fault.failWrite(after: 1, errno: ENOSPC),
        .shortWrite(after: 1, errno: ENOSPC),
        .failWrite(after: 1, errno: EIO),
    ])
    func failedLogWriteLosesNothingAndLaterWritesWork(fault: FaultyFileIO.Fault) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let io = FaultyFileIO()
        do {
            let db = try Database.open(at: dir.path, configuration: .withFileIO(io))
            let c = try db.createCollection("c", dimension: 3, metric: .euclidean)
            try c.upsert(records(0..<10))
            io.arm(fault)
            #expect(throws: SextantError.self) { try c.upsert(records(10..<20)) }
            io.disarm()
            // The log was cut back to the last whole record, so later batches append cleanly.
            try c.upsert(records(20..<30))
            #expect(try c.count() == 20)
            db.close()
        }
        try reopenAndCheck(dir.path, expected: Set(0..<10).union(20..<30))
    }

    @Test func diskFullErrorIsReportedAsDiskFull() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let io = FaultyFileIO()
        let db = try Database.open(at: dir.path, configuration: .withFileIO(io))
        let c = try db.createCollection("c", dimension: 3)
        io.arm(.diskFull(pathContains: "/wal/"))
        do {
            try c.upsert(records(0..<5))
            Issue.record("expected a disk-full error")
        } catch {
            #expect(error.code == .diskFull)
            #expect(error.message.contains("disk full"))
        }
        io.disarm()
        try c.upsert(records(5..<6))
        #expect(try c.count() == 1)
        db.close()
    }

    @Test func failedFsyncMakesTheCollectionRefuseWritesUntilReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let io = FaultyFileIO()
        do {
            let db = try Database.open(at: dir.path, configuration: .withFileIO(io))
            let c = try db.createCollection("c", dimension: 3, metric: .euclidean)
            try c.upsert(records(0..<10))
            io.arm(.failSync(after: 1, errno: EIO))
            #expect(throws: SextantError.self) { try c.upsert(records(10..<20)) }
            io.disarm()
            // After a failed fsync the page cache cannot be trusted: refuse, rather than acknowledge.
            do {
                try c.upsert(records(20..<30))
                Issue.record("writes must be refused after a failed fsync")
            } catch {
                #expect(error.code == .readOnly)
            }
            #expect(try c.count() == 10)
            db.close()
        }
        // The batch whose fsync failed was never acknowledged; it may or may not be present (its bytes
        // reached the file). Every acknowledged one is.
        let db = try Database.open(at: dir.path)
        let n = try db.collection("c").count()
        #expect(n == 10 || n == 20)
        try db.collection("c").upsert(records(30..<31))
        db.close()
    }

    @Test func diskFullDuringFlushKeepsEverythingAndRecovers() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let io = FaultyFileIO()
        do {
            let db = try Database.open(at: dir.path, configuration: .withFileIO(io) { $0.backgroundWork = false })
            let c = try db.createCollection("c", dimension: 3, metric: .euclidean)
            try c.upsert(records(0..<50))
            io.arm(.diskFull(pathContains: ".seg"))
            #expect(throws: SextantError.self) { try c.flush() }
            #expect(try c.count() == 50)
            // Writes still work (the log has room), and no temp file is left behind.
            try c.upsert(records(50..<60))
            let names = try FileManager.default.subpathsOfDirectory(atPath: dir.path)
            #expect(!names.contains { $0.hasSuffix(".tmp") })
            io.disarm()
            try c.flush()
            // Both frozen tables (the one whose flush failed and the newer one) are now segments.
            #expect(try c.info().segments.map(\.rows) == [50, 10])
            #expect(try c.info().memtableRows == 0)
            db.close()
        }
        try reopenAndCheck(dir.path, expected: Set(0..<60))
    }

    /// After a full disk the background flush removes what it wrote, once; then waits for the file system to
    /// have room without writing anything (no loop rewriting the same segment); `info` shows the state; once
    /// there is room again it finishes by itself.
    @Test func aFailingBackgroundFlushBacksOffWaitsForSpaceAndRecovers() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let io = FaultyFileIO()
        let db = try Database.open(at: dir.path, configuration: .withFileIO(io) {
            $0.memtableBytes = 3 * 4 * 256  // 256 rows per table
            $0.backgroundRetryDelay = 0.02
        })
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 3, metric: .euclidean)
        io.arm(.diskFull(pathContains: ".seg"))
        io.reportedAvailableBytes.withLock { $0 = 0 }
        for b in 0..<3 { try c.upsert(records((b * 100)..<(b * 100 + 100))) }  // the third batch freezes the first 200 rows
        var waited = 0
        while c.backgroundStatus.failures == 0 && waited < 500 {
            usleep(10_000)
            waited += 1
        }
        let status = c.backgroundStatus
        #expect(status.isFailing && status.lastError?.contains("disk full") == true, "\(status)")
        #expect(status.waitingForBytes.map { $0 > 256 * 12 } == true)
        #expect(try c.info().background.unflushedRows == 200)
        let failuresAfterFirstPass = io.failures
        // Nothing of the failed attempt is left, and over many retry periods nothing is written again.
        usleep(400_000)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/collections/0000000000000001")
        #expect(files == ["wal"], "\(files)")
        #expect(io.failures == failuresAfterFirstPass, "the background flush kept retrying on a full disk")
        #expect(try c.count() == 300)
        // Room again: the flush completes on its own.
        io.disarm()
        io.reportedAvailableBytes.withLock { $0 = nil }
        waited = 0
        while try (c.backgroundStatus.isFailing || c.info().segments.isEmpty) && waited < 1000 {
            usleep(10_000)
            waited += 1
        }
        #expect(!c.backgroundStatus.isFailing && c.backgroundStatus.failures == 0)
        #expect(try c.info().segments.map(\.rows) == [200])
        #expect(try c.count() == 300)
    }

    @Test func diskFullWhilePublishingTheManifestChangesNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let io = FaultyFileIO()
        do {
            let db = try Database.open(at: dir.path, configuration: .withFileIO(io) { $0.backgroundWork = false })
            let c = try db.createCollection("c", dimension: 3, metric: .euclidean)
            try c.upsert(records(0..<40))
            try c.delete([.int(3)])
            io.arm(.diskFull(pathContains: "MANIFEST"))
            #expect(throws: SextantError.self) { try c.flush() }
            #expect(throws: SextantError.self) { try db.createCollection("d", dimension: 2) }
            io.disarm()
            #expect(try c.count() == 39)
            db.close()
        }
        try reopenAndCheck(dir.path, expected: Set(0..<40).subtracting([3]))
    }
}
