// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Recall of the graph alone (no collection around it) against brute force.
@Suite struct HNSWGraphTests {
    struct Fixture {
        let vectors: UnsafeMutablePointer<Float>
        let norms: UnsafeMutablePointer<Float>
        let n: Int
        let d: Int
        init(_ rows: [[Float]]) {
            n = rows.count
            d = rows[0].count
            vectors = .allocate(capacity: n * d)
            norms = .allocate(capacity: n)
            for (i, r) in rows.enumerated() {
                (vectors + i * d).update(from: r, count: d)
                norms[i] = inverseNorm(r)
            }
        }
        func space(_ metric: Metric) -> DistanceSpace {
            DistanceSpace(metric: metric, dimension: d, vectors: vectors, inverseNorms: norms)
        }
        func free() {
            vectors.deallocate()
            norms.deallocate()
        }
    }

    /// Tie-aware recall@k of `hits` (rows) against exact keys over all rows.
    static func recall(_ space: DistanceSpace, _ q: [Float], _ hits: [Int], n: Int, k: Int) -> Double {
        let qInv = inverseNorm(q)
        let keys = q.withUnsafeBufferPointer { qb in (0..<n).map { space.distance(qb.baseAddress!, qInv, $0) } }
        let kth = keys.sorted()[k - 1]
        return Double(hits.prefix(k).filter { keys[$0] <= kth + 1e-5 }.count) / Double(k)
    }

    @Test(arguments: [Metric.cosine, .euclidean, .dot])
    func recallOnClusteredRandomData(metric: Metric) throws {
        var rng = RepeatableRandomNumberGenerator(seed: 1)
        let centers = randomVectors(50, dimension: 24, seed: 2)
        let rows = (0..<4000).map { i in centers[i % 50].map { $0 + 0.3 * rng.gaussian() } }
        let f = Fixture(rows)
        defer { f.free() }
        let space = f.space(metric)
        let graph = try #require(HNSWGraph.build(space: space, count: f.n, neighborsPerNode: 12, indexingSearchCount: 100))
        var total = 0.0
        let queries = randomVectors(50, dimension: 24, seed: 3).enumerated().map { i, v in zip(centers[i % 50], v).map { $0 + 0.3 * $1 } }
        for q in queries {
            var top = TopK(k: 10)
            q.withUnsafeBufferPointer { qb in
                graph.search(qb.baseAddress!, qInverseNorm: inverseNorm(q), ef: 64, space: space, allow: nil, into: &top, tag: 0)
            }
            total += Self.recall(space, q, top.sorted().map { Int($0.payload) }, n: f.n, k: 10)
        }
        #expect(total / Double(queries.count) >= 0.95)
    }

    @Test func singleThreadedBuildIsRepeatable() throws {
        let rows = randomVectors(1500, dimension: 8, seed: 9)
        let f = Fixture(rows)
        defer { f.free() }
        let a = try #require(HNSWGraph.build(space: f.space(.euclidean), count: f.n, neighborsPerNode: 8, indexingSearchCount: 40, threads: 1))
        let b = try #require(HNSWGraph.build(space: f.space(.euclidean), count: f.n, neighborsPerNode: 8, indexingSearchCount: 40, threads: 1))
        #expect(a.entryPoint == b.entryPoint && a.maxLevel == b.maxLevel)
        #expect(memcmp(a.level0, b.level0, f.n * (a.maxLinks0 + 1) * 4) == 0)
        #expect(memcmp(a.upperLinks, b.upperLinks, a.upperBlockCount * (a.neighborsPerNode + 1) * 4) == 0)
    }

    @Test func deletedRowsAreNeverReturned() throws {
        let rows = randomVectors(2000, dimension: 16, seed: 4)
        let f = Fixture(rows)
        defer { f.free() }
        let space = f.space(.euclidean)
        let graph = try #require(HNSWGraph.build(space: space, count: f.n, neighborsPerNode: 8, indexingSearchCount: 64))
        var deleted = Bitmap(count: f.n)
        for i in stride(from: 0, to: f.n, by: 2) { deleted.insert(i) }
        for q in rows.prefix(30) {
            var top = TopK(k: 10)
            q.withUnsafeBufferPointer { qb in
                graph.search(qb.baseAddress!, qInverseNorm: 1, ef: 40, space: space, allow: { !deleted.contains($0) }, into: &top, tag: 0)
            }
            #expect(top.keys.count == 10)
            #expect(top.payloads.allSatisfy { $0 % 2 == 1 })
        }
    }
}
