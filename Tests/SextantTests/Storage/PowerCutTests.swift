// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Simulated power cuts. One recorded run of a workload that goes through every write path — log appends
/// and group commit, flushes, manifest publishes, payload index and graph (+ int8 codes) writes, compaction,
/// a snapshot, an export and a restore, a backup, a delete by filter — then, for many points of that run
/// and many ways the unsynced writes could have landed (``PowerCutImage``), the disk state after a cut is
/// built and checked:
/// - `verify` finds no corruption in it (a torn tail is a note, not a problem);
/// - the database opens, every collection opens;
/// - collection "c" holds exactly the state after some prefix of its batches, at least every acknowledged one;
/// - the restored collection, the snapshot and the backup are each absent or complete, and present once
///   acknowledged.
///
/// `SEXTANT_POWER_CUTS` sets how many images are checked (default 300; the recorded run of Docs/Reliability.md
/// checks 10,000+: `SEXTANT_POWER_CUTS=12000 swift test -c release --filter PowerCutTests`).
@Suite struct PowerCutTests {
    static let images = Int(ProcessInfo.processInfo.environment["SEXTANT_POWER_CUTS"] ?? "") ?? 300

    typealias State = [RecordID: StoredRecord]

    /// The workload's expected states: `states[k]` is collection "c" after its first k batches.
    final class Model: @unchecked Sendable {
        var states: [State] = [[:]]
        var snapshotBatch: Int?
        var exportBatch: Int?
        var backupBatch: Int?
    }

    static func record(_ k: Int, _ id: UInt64, rng: inout RepeatableRandomNumberGenerator) -> Record {
        let vector = (0..<8).map { _ in Float(Int.random(in: -1000...1000, using: &rng)) / 100 }
        let doc: String? = Bool.random(using: &rng) ? "batch \(k) record \(id)" : nil
        return Record(id: .int(id), vector: vector, metadata: ["k": .int(Int64(k)), "id": .int(Int64(id))], document: doc)
    }

    /// Runs the workload under a recorder; returns the recorder and the model.
    static func recordRun(_ root: String) throws -> (PowerCutRecorder, Model) {
        let recorder = PowerCutRecorder(root: root)
        let model = Model()
        var config = Configuration.withFileIO(recorder)
        config.backgroundWork = false
        var rng = RepeatableRandomNumberGenerator(seed: 77)
        let db = try Database.open(at: root + "/db", configuration: config)
        var index = IndexConfiguration()
        index.minimumRowsForGraph = 8
        index.quantization = .int8
        index.indexingThreads = 1
        let c = try db.createCollection("c", dimension: 8, metric: .euclidean, index: index)
        var k = 0
        func batches(_ n: Int) throws {
            for _ in 0..<n {
                k += 1
                var state = model.states.last!
                var records: [Record] = []
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    let r = record(k, UInt64.random(in: 0..<60, using: &rng), rng: &rng)
                    records.append(r)
                }
                recorder.mark("begin \(k)")
                if k % 7 == 0 {
                    // A batch of deletes.
                    let ids = records.map(\.id)
                    try c.delete(ids)
                    for id in ids { state[id] = nil }
                } else {
                    try c.upsert(records)
                    for r in records { state[r.id] = StoredRecord(id: r.id, vector: r.vector, metadata: r.metadata, document: r.document) }
                }
                model.states.append(state)
                recorder.mark("ack \(k)")
            }
        }
        try batches(10)
        try c.flush()
        try batches(10)
        try c.createPayloadIndex("k", type: .integer)
        try c.waitForIndexing()
        try batches(10)
        try c.flush()
        try c.compact()
        try c.waitForIndexing()
        _ = try db.createSnapshot("s1")
        model.snapshotBatch = k
        recorder.mark("snapshot")
        try batches(10)
        _ = try c.export(to: root + "/export", options: ExportOptions(chunkRecords: 16))
        model.exportBatch = k
        try db.restore(from: root + "/export", options: RestoreOptions(into: "r"))
        recorder.mark("restore")
        try db.backup(to: root + "/backup")
        model.backupBatch = k
        recorder.mark("backup")
        try batches(5)
        // A delete by filter is one batch too.
        k += 1
        var state = model.states.last!
        for (id, r) in state where r.metadata?["k"]?.intValue.map({ $0 < 15 }) == true { state[id] = nil }
        recorder.mark("begin \(k)")
        try c.delete(filter: .must(.range("k", lt: 15)))
        model.states.append(state)
        recorder.mark("ack \(k)")
        try batches(5)
        try c.flush()
        db.close()
        return (recorder, model)
    }

    static func contents(_ c: VectorCollection) throws -> State {
        var out: State = [:]
        var after: RecordID?
        repeat {
            let page = try c.scroll(after: after, limit: 500, include: .all)
            for r in page.records { out[r.id] = r }
            after = page.nextAfter
        } while after != nil
        return out
    }

    /// Checks one post-cut image; returns a description of what is wrong, or nil.
    static func check(_ image: String, marks: [String], model: Model) throws -> String? {
        let begun = marks.filter { $0.hasPrefix("begin ") }.count
        let acked = marks.filter { $0.hasPrefix("ack ") }.count
        let dbPath = image + "/db"
        guard FileManager.default.fileExists(atPath: dbPath + "/CURRENT") else {
            // The cut came before the database's first manifest was durable: nothing was acknowledged.
            return acked == 0 ? nil : "no CURRENT although \(acked) batches were acknowledged"
        }
        let report = try Database.verify(at: dbPath)
        if !report.isClean { return "verify found corruption: \(report.problems)" }
        let db: Database
        do { db = try Database.open(at: dbPath) } catch { return "open failed: \(error.message)" }
        defer { db.close() }
        if !db.unavailableCollections().isEmpty { return "unavailable: \(db.unavailableCollections().mapValues(\.message))" }
        guard db.collectionNames().contains("c") else {
            return acked == 0 ? nil : "collection c is missing after \(acked) acknowledged batches"
        }
        let got = try contents(try db.collection("c"))
        guard let k = (acked...max(acked, begun)).first(where: { model.states[$0] == got }) else {
            let near = (0..<model.states.count).filter { model.states[$0] == got }
            return "collection c (\(got.count) records) matches no state in \(acked)...\(begun) (matches: \(near))"
        }
        _ = k
        if db.collectionNames().contains("r") {
            let r = try contents(try db.collection("r"))
            if r != model.states[model.exportBatch!] { return "restored collection r is partial (\(r.count) records)" }
        } else if marks.contains("restore") {
            return "the restore was acknowledged but collection r is missing"
        }
        let snapshots = try db.snapshots().map(\.name)
        if snapshots.contains("s1") {
            try db.restoreSnapshot("s1", collections: ["c"], as: "from-s1")
            let s = try contents(try db.collection("from-s1"))
            if s != model.states[model.snapshotBatch!] { return "snapshot s1 restores \(s.count) records, not the state at its batch" }
        } else if marks.contains("snapshot") {
            return "snapshot s1 was acknowledged but is missing"
        }
        if marks.contains("backup") {
            let problems = Database.verifyBackup(at: image + "/backup").problems
            if !problems.isEmpty { return "the acknowledged backup fails verification: \(problems)" }
            try db.restoreBackup(from: image + "/backup", collections: ["c"], as: "from-backup")
            let b = try contents(try db.collection("from-backup"))
            if b != model.states[model.backupBatch!] { return "the backup restores \(b.count) records, not the state at its batch" }
        }
        return nil
    }

    /// Group commit under concurrency, with flushes, compactions and graph builds in the background: four
    /// writers each upsert their own batches (batch k of writer t holds ids t·10000 + 5k …+4). After any cut,
    /// each writer's records are exactly its first p batches, whole, with p ≥ its acknowledged batches.
    @Test func concurrentWritersWithBackgroundWorkKeepEveryAcknowledgedBatch() throws {
        let dir = TemporaryDirectory("sextant-powercut-concurrent")
        defer { dir.cleanup() }
        let root = dir.sub("run")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let recorder = PowerCutRecorder(root: root)
        var config = Configuration.withFileIO(recorder)
        config.memtableBytes = 8 << 10  // 256 rows: frequent freezes, flushes and log rotations
        config.maxSegments = 3
        let writers = 4, batchesPerWriter = 60
        do {
            let db = try Database.open(at: root + "/db", configuration: config)
            var index = IndexConfiguration()
            index.minimumRowsForGraph = 64
            index.indexingThreads = 1
            let c = try db.createCollection("c", dimension: 4, metric: .dot, index: index)
            DispatchQueue.concurrentPerform(iterations: writers) { t in
                for k in 0..<batchesPerWriter {
                    let records = (0..<5).map { j in
                        Record(id: .int(UInt64(t * 10_000 + k * 5 + j)), vector: [Float(t), Float(k), Float(j), 1])
                    }
                    do {
                        try c.upsert(records)
                        recorder.mark("ack \(t) \(k)")
                    } catch {
                        Issue.record("writer \(t) batch \(k): \(error)")
                    }
                }
            }
            try c.waitForIndexing()
            db.close()
        }
        let ops = recorder.ops
        var rng = RepeatableRandomNumberGenerator(seed: 99)
        var failures: [String] = []
        let n = max(40, Self.images / 3)
        for i in 0..<n {
            let cut = Int.random(in: 0...ops.count, using: &rng)
            let loss: PowerCutImage.Loss = [.random, .everythingUnsynced, .random, .nothing][i % 4]
            let image = PowerCutImage(ops: ops, root: root, cut: cut, partialLast: Bool.random(using: &rng) ? Int.random(in: 1...2048, using: &rng) : nil)
            let path = dir.sub("image-\(i)")
            try image.materialize(at: path, loss: loss, seed: UInt64(i))
            defer { try? FileManager.default.removeItem(atPath: path) }
            var acked = [Int](repeating: 0, count: writers)
            for m in image.marks {
                let parts = m.split(separator: " ")
                if parts.count == 3, parts[0] == "ack", let t = Int(parts[1]), let k = Int(parts[2]) { acked[t] = max(acked[t], k + 1) }
            }
            guard FileManager.default.fileExists(atPath: path + "/db/CURRENT") else {
                if acked.contains(where: { $0 > 0 }) { failures.append("cut \(cut): no database after acknowledged batches") }
                continue
            }
            let report = try Database.verify(at: path + "/db")
            if !report.isClean { failures.append("cut \(cut) (\(loss)): verify: \(report.problems)"); continue }
            let db: Database
            do { db = try Database.open(at: path + "/db") } catch { failures.append("cut \(cut) (\(loss)): open: \(error.message)"); continue }
            defer { db.close() }
            guard let c = try? db.collection("c") else {
                if acked.contains(where: { $0 > 0 }) { failures.append("cut \(cut) (\(loss)): collection missing: \(db.unavailableCollections())") }
                continue
            }
            let got = try Self.contents(c)
            for t in 0..<writers {
                let mine = got.keys.compactMap { id -> Int? in
                    guard case .int(let v) = id, Int(v) / 10_000 == t else { return nil }
                    return Int(v) % 10_000
                }.sorted()
                let batches = mine.count / 5
                let whole = mine == Array(0..<(batches * 5))
                if !whole || batches < acked[t] {
                    failures.append("cut \(cut) (\(loss)): writer \(t) has \(mine.count) records (not \(acked[t])+ whole batches in order)")
                }
                for v in mine {
                    let r = got[.int(UInt64(t * 10_000 + v))]!
                    if r.vector != [Float(t), Float(v / 5), Float(v % 5), 1] { failures.append("cut \(cut): record \(t)/\(v) has the wrong vector") }
                }
            }
            if failures.count >= 5 { break }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) of \(n) simulated power cuts failed:\n" + failures.joined(separator: "\n")))
        print("power cuts (concurrent writers): \(n) images of a \(ops.count)-operation run checked, \(failures.count) failed")
    }

    @Test func everySimulatedPowerCutLeavesAPrefixOfTheAcknowledgedBatches() throws {
        let dir = TemporaryDirectory("sextant-powercut")
        defer { dir.cleanup() }
        let root = dir.sub("run")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let (recorder, model) = try Self.recordRun(root)
        let ops = recorder.ops
        // Sanity of the recording: every write path was exercised.
        let created = ops.compactMap { op -> String? in if case .create(let p, _) = op { return p } else { return nil } }
        for suffix in [".log", ".seg", ".del", ".pidx", ".hnsw", ".q8", "CURRENT", "BACKUP.json", "manifest.json", "SNAPSHOT"] {
            #expect(created.contains { $0.hasSuffix(suffix) || $0.hasSuffix(suffix + ".tmp") }, "the workload never wrote a \(suffix) file")
        }

        var rng = RepeatableRandomNumberGenerator(seed: 2026)
        var failures: [String] = []
        var checked = 0
        let n = Self.images
        for i in 0..<n {
            // Cut points spread over the whole run, plus random ones; loss modes rotate.
            let cut = i < ops.count && n >= ops.count * 2 ? i : Int.random(in: 0...ops.count, using: &rng)
            let loss: PowerCutImage.Loss = [.random, .random, .everythingUnsynced, .nothing][i % 4]
            let partial = Bool.random(using: &rng) ? Int.random(in: 1...4096, using: &rng) : nil
            let image = PowerCutImage(ops: ops, root: root, cut: cut, partialLast: partial)
            let path = dir.sub("image-\(i)")
            try image.materialize(at: path, loss: loss, seed: UInt64(i))
            if let failure = try Self.check(path, marks: image.marks, model: model) {
                failures.append("cut \(cut)/\(ops.count) (\(loss), seed \(i)): \(failure)")
            }
            try? FileManager.default.removeItem(atPath: path)
            checked += 1
            if failures.count >= 5 { break }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) of \(checked) simulated power cuts failed:\n" + failures.joined(separator: "\n")))
        print("power cuts: \(checked) images of a \(ops.count)-operation run checked, \(failures.count) failed")
    }
}
