// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Dispatch
import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

@Suite struct CollectionBasicsTests {
    @Test func upsertGetDeleteCountAcrossFlushCompactReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.backgroundWork = false
        config.memtableBytes = 4 * 1024  // 256 rows of 4 floats: forces several freezes
        let vectors = randomVectors(1000, dimension: 4, seed: 1)
        do {
            let db = try Database.open(at: dir.path, configuration: config)
            let c = try db.createCollection("c", dimension: 4, metric: .euclidean)
            for start in stride(from: 0, to: 1000, by: 100) {
                try c.upsert((start..<start + 100).map {
                    Record(id: .int(UInt64($0)), vector: vectors[$0], metadata: ["i": .int(Int64($0))] as JSONValue, document: $0 % 2 == 0 ? "doc \($0)" : nil)
                })
            }
            #expect(try c.count() == 1000)
            try c.flush()
            // Overwrite some, delete some, across segments and memtable.
            try c.upsert((0..<50).map { Record(id: .int(UInt64($0)), vector: vectors[999 - $0], metadata: "replaced") })
            #expect(try c.delete((900..<1000).map { .int(UInt64($0)) }) == 100)
            #expect(try c.delete([.int(5000)]) == 0)
            #expect(try c.count() == 900)
            let got = try c.get([.int(3), .int(950), .int(600)])
            #expect(got.count == 2)
            #expect(got[0].vector == vectors[996])
            #expect(got[0].metadata == "replaced")
            #expect(got[1].document == "doc 600")
            db.close()
        }
        for round in 0..<2 {
            let db = try Database.open(at: dir.path, configuration: config)
            let c = try db.collection("c")
            #expect(try c.count() == 900)
            let got = try c.get([.int(3), .int(950), .int(601), .int(600)])
            #expect(got.map(\.id) == [.int(3), .int(601), .int(600)])
            #expect(got[0].vector == vectors[996])
            #expect(got[1].document == nil)
            #expect(got[1].metadata == ["i": 601])
            if round == 0 {
                try c.compact()
                #expect(try c.info().segments.count == 1)
                #expect(try c.info().segments[0].rows == 900)
            }
            db.close()
        }
    }

    @Test(arguments: Metric.allCases)
    func exactSearchMatchesBruteForce(metric: Metric) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.backgroundWork = false
        config.memtableBytes = 37 * 300 * 4
        let vectors = randomVectors(2000, dimension: 37, seed: 7)
        let db = try Database.open(at: dir.path, configuration: config)
        let c = try db.createCollection("m", dimension: 37, metric: metric)
        try c.upsert((0..<1200).map { Record(id: .int(UInt64($0)), vector: vectors[$0]) })
        try c.flush()
        try c.upsert((1200..<2000).map { Record(id: .string("s\($0)"), vector: vectors[$0]) })
        try c.delete((0..<100).map { .int(UInt64($0 * 3)) })
        var live: [(RecordID, [Float])] = []
        for i in 0..<2000 where !(i < 300 && i % 3 == 0) {
            live.append((i < 1200 ? .int(UInt64(i)) : .string("s\(i)"), vectors[i]))
        }
        let truthTable = Dictionary(uniqueKeysWithValues: live.map { ($0.0, 0.0) })
        let queries = randomVectors(20, dimension: 37, seed: 99)
        let batch = try c.search(batch: queries, limit: 10)
        for (qi, q) in queries.enumerated() {
            let oracle = bruteForceTopK(metric, query: q, records: live, k: 10)
            var truth = truthTable
            for (id, v) in live { truth[id] = bruteForceScore(metric, q, v) }
            let hits = try c.search(q, limit: 10)
            #expect(topKMatchesOracle(hits, oracle: oracle, truth: truth, metric: metric) == nil)
            #expect(batch[qi] == hits)
        }
        db.close()
    }

    @Test func scrollVisitsEveryLiveRecordOnceAcrossSources() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.backgroundWork = false
        config.memtableBytes = 3 * 100 * 4
        let db = try Database.open(at: dir.path, configuration: config)
        let c = try db.createCollection("s", dimension: 3, metric: .dot)
        var expected = Set<RecordID>()
        var rng = RepeatableRandomNumberGenerator(seed: 3)
        for i in 0..<700 {
            let id: RecordID = i % 2 == 0 ? .int(UInt64.random(in: 0..<100_000, using: &rng)) : .string("k\(UInt64.random(in: 0..<100_000, using: &rng))")
            try c.upsert(id, vector: [1, 2, Float(i)])
            expected.insert(id)
            if i == 350 { try c.flush() }
        }
        let doomed = Array(expected.prefix(50))
        try c.delete(doomed)
        expected.subtract(doomed)
        var seen: [RecordID] = []
        var after: RecordID? = nil
        repeat {
            let page = try c.scroll(after: after, limit: 37)
            seen += page.records.map(\.id)
            after = page.nextAfter
        } while after != nil
        #expect(seen.count == expected.count)
        #expect(Set(seen) == expected)
        #expect(seen == seen.sorted())
        db.close()
    }
}

@Suite struct AsyncImportTests {
    @Test func cancellingAnImportKeepsCommittedBatchesOnly() async throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let vectors = randomVectors(5000, dimension: 8, seed: 21)
        try writeNPY(dir.sub("v.npy"), vectors)
        let db = try Database.open(at: dir.sub("db"))
        let c = try db.createCollection("c", dimension: 8, metric: .dot)
        let committed = Counter()
        let reached = DispatchSemaphore(value: 0)
        let proceed = DispatchSemaphore(value: 0)
        let task = Task {
            try await c.importRecords(from: .npy(vectors: dir.sub("v.npy"), ids: nil, records: nil), batchSize: 100) { n in
                committed.set(n)
                if n == 1000 {
                    reached.signal()
                    proceed.wait()  // hold the import here until the test has cancelled the task
                }
            }
        }
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { reached.wait(); k.resume() }
        }
        task.cancel()
        proceed.signal()
        do {
            _ = try await task.value
            Issue.record("expected cancellation")
        } catch let e as SextantError {
            #expect(e.code == .cancelled)
        }
        let n = try c.count()
        #expect(n == 1000)
        #expect(n == committed.value)
        db.close()
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    func set(_ v: Int) { lock.lock(); n = v; lock.unlock() }
}
