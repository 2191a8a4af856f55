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
}
