// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Dispatch
import Foundation
@testable import Sextant
import SextantTestSupport
import Synchronization
import Testing

@Suite struct ConcurrencyTests {
    /// Writers (sharing fsyncs), readers, background flushes and compactions all at once: readers never
    /// see a deleted record or a crash, and the final state is exactly what was written.
    @Test func writersReadersFlushesAndCompactionsTogether() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.memtableBytes = 8 * 4 * 300  // freeze every ~300 rows
        config.maxSegments = 4
        let db = try Database.open(at: dir.path, configuration: config)
        let c = try db.createCollection("c", dimension: 8, metric: .euclidean)
        // A marker vector far from everything; records that carry it are deleted right after being written.
        let doomedVector: [Float] = Array(repeating: 100, count: 8)
        let writers = 4, perWriter = 600
        let failures = Locked<[String]>([])
        // Ids whose delete has returned: a search that starts after that must never return them.
        let deleted = Locked<Set<RecordID>>([])
        let done = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: writers + 2) { t in
            if t < writers {
                var rng = RepeatableRandomNumberGenerator(seed: UInt64(t))
                for i in 0..<perWriter {
                    let id = RecordID.int(UInt64(t * perWriter + i))
                    do {
                        if i % 10 == 0 {
                            let doomed = RecordID.string("doomed-\(t)-\(i)")
                            try c.upsert(doomed, vector: doomedVector)
                            try c.delete([doomed])
                            deleted.withLock { _ = $0.insert(doomed) }
                        }
                        try c.upsert(id, vector: (0..<8).map { _ in rng.gaussian() })
                        if i % 50 == 49 { try c.compact() }
                    } catch {
                        failures.withLock { $0.append("writer \(t): \(error)") }
                    }
                }
                done.add(1, ordering: .relaxed)
            } else {
                while done.load(ordering: .relaxed) < writers {
                    do {
                        let deletedBefore = deleted.withLock { $0 }
                        let hits = try c.search(doomedVector, limit: 5)
                        if let bad = hits.first(where: { deletedBefore.contains($0.id) }) {
                            failures.withLock { $0.append("reader saw deleted record \(bad.id)") }
                        }
                        let n = try c.count()
                        if n > writers * perWriter { failures.withLock { $0.append("count \(n) too large") } }
                    } catch {
                        failures.withLock { $0.append("reader: \(error)") }
                    }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(try c.count() == writers * perWriter)
        let page = try c.scroll(limit: 10_000)
        #expect(page.records.count == writers * perWriter)
        db.close()
        let reopened = try Database.open(at: dir.path)
        #expect(try reopened.collection("c").count() == writers * perWriter)
        reopened.close()
    }

    /// `delete(filter:)` against writers rewriting the records it matches: a record rewritten so it no
    /// longer matches is never deleted afterwards. The filter is evaluated by the commit leader, between
    /// batches, so each rewrite lands wholly before the evaluation (and is not matched) or after the delete
    /// (and survives it). Checked on every round against that rule.
    @Test func deleteByFilterNeverDeletesARecordRewrittenConcurrently() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.path)
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 4, metric: .euclidean)
        let ids = 300
        let old = try Filter(json: #"{"must":[{"key":"tag","match":{"value":"old"}}]}"#)
        for round in 0..<20 {
            try c.upsert((0..<ids).map { Record(id: .int(UInt64($0)), vector: [Float($0), 1, 2, 3], metadata: ["tag": "old"]) })
            let failure = Locked<SextantError?>(nil)
            DispatchQueue.concurrentPerform(iterations: 3) { t in
                do throws(SextantError) {
                    if t == 0 {
                        _ = try c.delete(filter: old)
                    } else {
                        // Rewrite every id as "new", in small batches, interleaving with the delete.
                        for start in stride(from: t - 1, to: ids, by: 20) {
                            let batch = stride(from: start, to: min(ids, start + 20), by: 2).map {
                                Record(id: .int(UInt64($0)), vector: [Float($0), 9, 9, 9], metadata: ["tag": "new"])
                            }
                            try c.upsert(batch)
                        }
                    }
                } catch { failure.withLock { $0 = error } }
            }
            #expect(failure.withLock { $0 } == nil)
            // Every record was rewritten as "new" at some point; a "new" record is never matched by the
            // filter, so each one is present. No "old" record survives the delete.
            let all = try c.scroll(limit: 10_000, include: .metadata).records
            #expect(all.count == ids, "round \(round): \(ids - all.count) rewritten records were deleted")
            #expect(all.allSatisfy { $0.metadata?["tag"]?.stringValue == "new" }, "round \(round)")
            _ = try c.delete(filter: Filter(json: #"{"must":[{"key":"tag","match":{"value":"new"}}]}"#))
            #expect(try c.count() == 0)
        }
    }
}
