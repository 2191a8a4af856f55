// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Exact search on the real dataset (../shared/data/debian-minilm-20k) equals the brute-force oracle.
@Suite(.enabled(if: sharedDatasetPath() != nil, "needs ../shared/data/debian-minilm-20k"))
struct DatasetSearchTests {
    static let data = sharedDatasetPath() ?? ""

    /// Imports the dataset with ids = row numbers, split over two segments and the memtable.
    func load(_ path: String, metric: Metric) throws -> (Database, VectorCollection, [[Float]]) {
        let base = try loadFloatMatrix(Self.data + "/base.f32.npy")
        var config = Configuration()
        config.backgroundWork = false
        let db = try Database.open(at: path, configuration: config)
        let c = try db.createCollection("debian", dimension: 384, metric: metric)
        for chunk in stride(from: 0, to: base.count, by: 2000) {
            try c.upsert((chunk..<min(base.count, chunk + 2000)).map { Record(id: .int(UInt64($0)), vector: base[$0]) })
            if chunk == 8000 || chunk == 14000 { try c.flush() }
        }
        return (db, c, base)
    }

    @Test func cosineEqualsTheShippedGroundTruth() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c, _) = try load(dir.path, metric: .cosine)
        defer { db.close() }
        #expect(try c.info().segments.count == 2)
        let queries = try loadFloatMatrix(Self.data + "/queries.f32.npy")
        let (_, gtData) = try loadNPY(Self.data + "/gt_cosine_top100.i32.npy")
        let (_, gtScoreData) = try loadNPY(Self.data + "/gt_cosine_top100_scores.f32.npy")
        let gt = gtData.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        let gtScores = gtScoreData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let results = try c.search(batch: queries, limit: 10)
        var hits = 0
        for (qi, result) in results.enumerated() {
            #expect(result.count == 10)
            let tenth = gtScores[qi * 100 + 9]
            // Tie-aware: a hit counts if its score is at least the 10th true score minus 1e-6 (BENCHMARKS.md).
            for (rank, h) in result.enumerated() {
                if h.score >= tenth - 1e-5 { hits += 1 }
                // And the score itself is right to float precision.
                if case .int(let row) = h.id, let pos = gt[(qi * 100)..<(qi * 100 + 100)].firstIndex(of: Int32(row)) {
                    #expect(abs(gtScores[pos] - h.score) < 1e-5)
                } else if rank < 5 {
                    Issue.record("query \(qi): hit \(h.id) at rank \(rank) is not in the true top 100")
                }
            }
        }
        #expect(hits == results.count * 10, "recall@10 must be exactly 1.0 for exact search")
    }

    @Test(arguments: [Metric.dot, .euclidean, .manhattan])
    func otherMetricsEqualBruteForce(metric: Metric) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c, base) = try load(dir.path, metric: metric)
        defer { db.close() }
        let queries = try loadFloatMatrix(Self.data + "/queries.f32.npy")
        let live = base.enumerated().map { (RecordID.int(UInt64($0.offset)), $0.element) }
        for q in queries.prefix(8) {
            var truth: [RecordID: Double] = [:]
            for (id, v) in live { truth[id] = bruteForceScore(metric, q, v) }
            let oracle = Array(truth.sorted { metric.higherIsBetter ? $0.value > $1.value : $0.value < $1.value }.prefix(10)).map { ($0.key, $0.value) }
            let hits = try c.search(q, limit: 10)
            #expect(topKMatchesOracle(hits, oracle: oracle, truth: truth, metric: metric) == nil)
        }
    }
}
