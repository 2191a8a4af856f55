// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

@Suite struct BackupTests {
    func records(_ range: Range<Int>, version: Int = 1) -> [Record] {
        let vectors = randomVectors(range.count, dimension: 8, seed: UInt64(range.lowerBound * 31 + version))
        return range.enumerated().map { Record(id: .int(UInt64($0.element)), vector: vectors[$0.offset], metadata: ["v": .int(Int64(version))], document: "d\($0.element)") }
    }

    func state(_ c: VectorCollection) throws -> [StoredRecord] { try c.scroll(limit: 1_000_000, include: .all).records }

    /// Found by the soak: a backup of a collection that was created and never written holds no file of
    /// it, and restoring it failed listing a directory the restore never made. It restores empty.
    @Test func aBackupOfANeverWrittenCollectionRestoresEmpty() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        try db.createCollection("empty", dimension: 8, metric: .cosine)
        try db.backup(to: dir.sub("chain"))
        try db.restoreBackup(from: dir.sub("chain"), collections: ["empty"], as: "again")
        let again = try db.collection("again")
        #expect(try again.count() == 0)
        #expect(again.dimension == 8 && again.metric == .cosine)
        try again.upsert(records(0..<3))
        #expect(try again.count() == 3)
    }

    /// Found by the soak: a backup killed mid-way left its staging directory (hard links to segments) in the
    /// database for good. The next open for writing removes it, as it does a restore's.
    @Test func anOpenRemovesTheStagingDirectoryOfAnInterruptedBackup() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var db = try Database.open(at: dir.sub("db"))
        let c = try db.createCollection("c", dimension: 8, metric: .euclidean)
        try c.upsert(records(0..<50))
        try c.flush()
        db.close()
        let stage = dir.sub("db/backup-4242-00000000deadbeef.tmp")
        try FileManager.default.createDirectory(atPath: stage + "/collections/0000000000000001", withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: stage + "/collections/0000000000000001/0000000000000001.seg"))
        // A read-only open changes nothing; an open for writing cleans up.
        db = try Database.open(at: dir.sub("db"), configuration: { var c = Configuration(); c.readOnly = true; return c }())
        db.close()
        #expect(FileManager.default.fileExists(atPath: stage))
        db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        #expect(!FileManager.default.fileExists(atPath: stage))
        #expect(try db.collection("c").count() == 50)
    }

    /// An incremental chain restores the same state as a full backup taken at the same moment, at every
    /// link; increments store only what changed.
    @Test func incrementalChainsRestoreWhatAFullBackupWould() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 8, metric: .euclidean)
        try c.upsert(records(0..<400))
        try c.flush()
        var expected: [[StoredRecord]] = []
        let first = try db.backup(to: dir.sub("chain"), collections: ["c"])
        #expect(first.kind == "full" && first.sequence == 1)
        expected.append(try state(c))
        for step in 1...3 {
            try c.upsert(records(400 * step..<400 * step + 150))
            try c.delete((step * 10..<step * 10 + 5).map { .int(UInt64($0)) })
            try c.upsert(records(100..<110, version: step + 1))  // overwrites in an old segment
            if step == 2 { try c.compact() }
            let inc = try db.backup(to: dir.sub("chain"), collections: ["c"], incremental: true)
            let full = try db.backup(to: dir.sub("full-\(step)"), collections: ["c"])
            #expect(inc.sequence == step + 1 && inc.kind == "incremental")
            if step != 2 { #expect(inc.bytes < full.bytes, "step \(step): the increment stored \(inc.bytes) of \(full.bytes) bytes") }
            expected.append(try state(c))
            try db.restoreBackup(from: dir.sub("full-\(step)"), as: "from-full-\(step)")
            #expect(try state(try db.collection("from-full-\(step)")) == expected.last!)
        }
        #expect(try Database.backups(in: dir.sub("chain")).map(\.sequence) == [1, 2, 3, 4])
        #expect(Database.verifyBackup(at: dir.sub("chain")).problems.isEmpty)
        for (i, want) in expected.enumerated() {
            try db.restoreBackup(from: dir.sub("chain"), at: i + 1, as: "at-\(i + 1)")
            #expect(try state(try db.collection("at-\(i + 1)")) == want, "backup \(i + 1)")
        }
        // The latest, over the collection itself.
        try c.upsert(records(9000..<9010))
        try db.restoreBackup(from: dir.sub("chain"))
        #expect(try state(try db.collection("c")) == expected.last!)
    }

    /// A plain BACKUP.json is not authenticated: a crafted one whose file path climbs out of the chain must
    /// not make a restore copy a file from outside the chain to outside the staging directory (found by the
    /// `backup` fuzz target's reasoning; Fuzz/Regressions/backup/path-traversal.bundle).
    @Test func aDescriptionWhoseFilePathLeavesTheChainIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 8, metric: .euclidean)
        try c.upsert(records(0..<10))
        try c.flush()
        try db.backup(to: dir.sub("chain"))
        let description = dir.sub("chain/backup-000001/BACKUP.json")
        var m = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: description))) as? [String: Any])
        var files = try #require(m["files"] as? [[String: Any]])
        let original = try #require(files[0]["path"] as? String)
        // The same bytes outside the chain; both the copy's source (in the chain) and its target (in the
        // restore's staging directory) resolve to it: collections/<id>/../../../.. is two levels above each.
        let escaping = (original as NSString).deletingLastPathComponent + "/../../../../escaped"
        let outside = dir.sub("escaped")
        try FileManager.default.copyItem(atPath: dir.sub("chain/backup-000001/" + original), toPath: outside)
        files[0]["path"] = escaping
        m["files"] = files
        try JSONSerialization.data(withJSONObject: m).write(to: URL(fileURLWithPath: description))

        let expected = "\(description): file \"\(escaping)\" (stored in backup 1) is not a file of this chain"
        do {
            try db.restoreBackup(from: dir.sub("chain"))
            Issue.record("a file path outside the chain was accepted")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.message == expected)
        }
        #expect(Database.verifyBackup(at: dir.sub("chain")).problems == [expected])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["chain", "db", "escaped"])
    }

    @Test func damageAndBrokenChainsAreReportedNamingTheFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 8, metric: .euclidean)
        try c.upsert(records(0..<300))
        try db.backup(to: dir.sub("chain"))
        try c.upsert(records(300..<350))
        try db.backup(to: dir.sub("chain"), incremental: true)
        #expect(throws: SextantError.self) { try db.backup(to: dir.sub("empty"), incremental: true) }
        let seg = try #require(try FileManager.default.subpathsOfDirectory(atPath: dir.sub("chain/backup-000001")).first { $0.hasSuffix(".seg") })
        let path = dir.sub("chain/backup-000001/") + seg
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count / 3] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        let report = Database.verifyBackup(at: dir.sub("chain"))
        #expect(report.problems.contains { $0.contains(seg) && $0.contains("checksum") }, "\(report.problems)")
        let before = try state(c)
        do {
            try db.restoreBackup(from: dir.sub("chain"))
            Issue.record("a damaged chain was restored")
        } catch {
            #expect(error.code == .corrupt && error.message.contains(seg), "\(error.message)")
        }
        #expect(try state(try db.collection("c")) == before)
        // A missing link.
        try FileManager.default.removeItem(atPath: dir.sub("chain/backup-000001"))
        #expect(Database.verifyBackup(at: dir.sub("chain")).problems.contains { $0.contains("chain is broken") })
        #expect(throws: SextantError.self) { try db.restoreBackup(from: dir.sub("chain")) }
    }
}
