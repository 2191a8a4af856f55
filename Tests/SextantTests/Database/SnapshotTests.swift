// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Synchronization
import Testing

@Suite struct SnapshotTests {
    func records(_ range: Range<Int>, dimension: Int = 8, tag: String = "v1") -> [Record] {
        let vectors = randomVectors(range.count, dimension: dimension, seed: UInt64(range.lowerBound) + 1)
        return range.enumerated().map { i, id in
            Record(id: .int(UInt64(id)), vector: vectors[i], metadata: ["tag": .string(tag)], document: "doc \(id)")
        }
    }

    func all(_ c: VectorCollection) throws -> [StoredRecord] {
        try c.scroll(limit: 1_000_000, include: .all).records
    }

    @Test func createListRestoreDeleteWithoutCopyingFiles() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.path)
        defer { db.close() }
        let c = try db.createCollection("a", dimension: 8, metric: .euclidean)
        try c.upsert(records(0..<300))
        try c.createPayloadIndex("tag", type: .keyword)
        try c.flush()
        try c.upsert(records(300..<400))  // in the memtable: the snapshot flushes it
        let before = try all(c)
        let info = try db.createSnapshot("s1")
        #expect(info.records == 400 && info.collections == ["a"])
        #expect(throws: SextantError.self) { try db.createSnapshot("s1") }
        #expect(throws: SextantError.self) { try db.createSnapshot("../x") }
        // Hard links: the snapshot's segment is the database's file.
        let seg = try #require(try FileManager.default.subpathsOfDirectory(atPath: dir.path + "/snapshots/s1").first { $0.hasSuffix(".seg") })
        let attrs = try FileManager.default.attributesOfItem(atPath: dir.path + "/snapshots/s1/" + seg)
        #expect((attrs[.referenceCount] as? Int ?? 1) >= 2)

        // Change everything, then restore.
        try c.delete((0..<200).map { .int(UInt64($0)) })
        try c.upsert(records(1000..<1100, tag: "v2"))
        try c.compact()
        #expect(try c.count() == 300)
        try db.restoreSnapshot("s1")
        let restored = try db.collection("a")
        #expect(try all(restored) == before)
        #expect(throws: SextantError.self) { try c.count() }  // the old handle is closed
        #expect(restored.payloadIndexes == [PayloadIndexSpec(key: "tag", type: .keyword)])
        #expect(try restored.count(filter: .must(.match("tag", "v1"))) == 400)
        // Restore under a new name leaves the original alone.
        try restored.upsert(records(2000..<2010))
        try db.restoreSnapshot("s1", as: "a-copy")
        #expect(try db.collection("a-copy").count() == 400)
        #expect(try db.collection("a").count() == 410)
        #expect(try db.snapshots().map(\.name) == ["s1"])
        try db.deleteSnapshot("s1")
        #expect(try db.snapshots().isEmpty)
        #expect(try db.collection("a").count() == 410)  // its files outlive the snapshot's links
        #expect(throws: SextantError.self) { try db.restoreSnapshot("s1") }
        db.close()
        #expect(try Database.verify(at: dir.path).isClean)
        let reopened = try Database.open(at: dir.path)
        defer { reopened.close() }
        #expect(try reopened.collection("a").count() == 410)
        #expect(try reopened.collection("a-copy").count() == 400)
    }

    /// A snapshot taken while another thread writes batches restores to a state holding a prefix of the
    /// batches: every batch acknowledged before the snapshot began, none half applied.
    /// Found by the soak: a `snapshot delete` killed mid-way left a snapshot directory without its
    /// description, and every later listing failed. A delete now renames the snapshot out of the listing
    /// first; what an interrupted one leaves is removed by the next open; a directory an older version left
    /// is named with the way out.
    @Test func anInterruptedDeleteNeverBreaksTheListing() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var db = try Database.open(at: dir.sub("db"))
        try db.createCollection("c", dimension: 4).upsert(.int(1), vector: [1, 2, 3, 4])
        try db.createSnapshot("keep")
        try db.createSnapshot("gone")
        try db.createSnapshot("old")
        db.close()
        let snapshots = dir.sub("db/snapshots")
        // What a delete killed during its removal leaves: the renamed directory, partly removed.
        try FileManager.default.moveItem(atPath: snapshots + "/gone", toPath: snapshots + "/gone.deleting-77-0000000000000001.tmp")
        try FileManager.default.removeItem(atPath: snapshots + "/gone.deleting-77-0000000000000001.tmp/SNAPSHOT")
        // What an older version's interrupted delete left: the directory without its description.
        try FileManager.default.removeItem(atPath: snapshots + "/old/SNAPSHOT")
        db = try Database.open(at: dir.sub("db"))
        #expect(!FileManager.default.fileExists(atPath: snapshots + "/gone.deleting-77-0000000000000001.tmp"))
        var failure: SextantError?
        do { _ = try db.snapshots() } catch { failure = error }
        #expect(failure?.code == .corrupt && failure?.message.contains("snapshot delete old") == true, "\(String(describing: failure))")
        try db.deleteSnapshot("old")
        #expect(try db.snapshots().map(\.name) == ["keep"])
        try db.deleteSnapshot("keep")
        #expect(try db.snapshots().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshots).isEmpty)
        db.close()
    }

    @Test func aSnapshotDuringConcurrentWritesIsConsistent() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.memtableBytes = 8 * 4 * 500
        let db = try Database.open(at: dir.path, configuration: config)
        defer { db.close() }
        let c = try db.createCollection("w", dimension: 8, metric: .euclidean)
        let acknowledged = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let writer = Thread {
            var batch = 0
            while !stop.load(ordering: .relaxed) && batch < 400 {
                // Batch b writes ids b*10 ..< b*10+10 and overwrites id 1_000_000 with the batch number.
                var rs = self.records(batch * 10..<batch * 10 + 10)
                rs.append(Record(id: .int(1_000_000), vector: [Float](repeating: Float(batch), count: 8), metadata: ["batch": .int(Int64(batch))]))
                if (try? c.upsert(rs)) == nil { return }
                batch += 1
                acknowledged.store(batch, ordering: .releasing)
            }
        }
        writer.start()
        while acknowledged.load(ordering: .acquiring) < 20 { usleep(1000) }
        let atStart = acknowledged.load(ordering: .acquiring)
        try db.createSnapshot("mid")
        stop.store(true, ordering: .relaxed)
        while !writer.isFinished { usleep(1000) }
        try db.restoreSnapshot("mid", as: "restored")
        let r = try db.collection("restored")
        let last = try #require(try r.get([.int(1_000_000)]).first?.metadata?["batch"]?.intValue)
        let batches = Int(last) + 1
        #expect(batches >= atStart)
        #expect(try r.count() == batches * 10 + 1)
        let ids = Set(try r.scroll(limit: 1_000_000, include: []).records.map(\.id))
        #expect(ids == Set((0..<batches * 10).map { RecordID.int(UInt64($0)) } + [.int(1_000_000)]))
    }

    @Test func anArchiveMovesASnapshotToAnotherDatabaseAndDamageIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let a = try Database.open(at: dir.sub("a"))
        let c = try a.createCollection("docs", dimension: 8, metric: .cosine)
        try c.upsert(records(0..<500))
        try c.delete([.int(3), .int(4)])
        let expected = try all(c)
        try a.createSnapshot("s")
        var reports = 0
        try a.archiveSnapshot("s", to: dir.sub("s.sxa")) { _, _ in reports += 1 }
        #expect(reports > 0)
        a.close()

        let b = try Database.open(at: dir.sub("b"))
        defer { b.close() }
        let info = try b.importSnapshotArchive(dir.sub("s.sxa"))
        #expect(info.name == "s" && info.records == 498)
        try b.restoreSnapshot("s")
        #expect(try all(try b.collection("docs")) == expected)
        #expect(try b.collection("docs").search(text: "doc 7").first?.id == .int(7))

        // One flipped byte anywhere in the data is refused, naming the archive; nothing is left behind.
        var data = try Data(contentsOf: URL(fileURLWithPath: dir.sub("s.sxa")))
        data[data.count / 2] ^= 0x10
        try data.write(to: URL(fileURLWithPath: dir.sub("bad.sxa")))
        do {
            try b.importSnapshotArchive(dir.sub("bad.sxa"), as: "bad")
            Issue.record("a damaged archive was accepted")
        } catch {
            #expect(error.code == .corrupt && error.message.contains("bad.sxa"), "\(error.message)")
        }
        #expect(try b.snapshots().map(\.name) == ["s"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.sub("b") + "/snapshots") == ["s"])
        // A truncated archive too.
        try data.prefix(data.count - 40).write(to: URL(fileURLWithPath: dir.sub("short.sxa")))
        #expect(throws: SextantError.self) { try b.importSnapshotArchive(dir.sub("short.sxa"), as: "short") }

        // Sizes past Int.max (a crafted archive; found by the archive fuzz target, Fuzz/Regressions/archive)
        // are refused as damage instead of trapping in a conversion: an entry's size, the footer's count.
        let intact = try Data(contentsOf: URL(fileURLWithPath: dir.sub("s.sxa")))
        let pathLength = Int(intact.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt32.self) })
        var huge = intact
        for i in 0..<8 { huge[16 + 4 + pathLength + i] = 0xFF }
        try huge.write(to: URL(fileURLWithPath: dir.sub("huge.sxa")))
        do {
            try b.importSnapshotArchive(dir.sub("huge.sxa"), as: "huge")
            Issue.record("an entry size of 2^64-1 was accepted")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.message == "\(dir.sub("huge.sxa")): offset 16: entry 'SNAPSHOT' runs past the end")
        }
        var count = intact
        for i in 0..<8 { count[count.count - 28 + 8 + i] = 0xFF }
        try count.write(to: URL(fileURLWithPath: dir.sub("count.sxa")))
        do {
            try b.importSnapshotArchive(dir.sub("count.sxa"), as: "count")
            Issue.record("an entry count of 2^64-1 was accepted")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.message == "\(dir.sub("count.sxa")): offset \(count.count - 28): bad footer (truncated or damaged archive)")
        }
        #expect(try b.snapshots().map(\.name) == ["s"])
    }
}
