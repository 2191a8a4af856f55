// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// A development probe, not a benchmark of record (that is bench/run_ann.sh): build time and QPS/recall per
/// ef on the real 20k set. Runs only with SEXTANT_PROBE=1, in release: `SEXTANT_PROBE=1 swift test -c release --filter HNSWProbe`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SEXTANT_PROBE"] == "1" && sharedDatasetPath() != nil))
struct HNSWProbe {
    @Test func probe() throws {
        let data = sharedDatasetPath()!
        let base = try loadFloatMatrix(data + "/base.f32.npy")
        let queries = try loadFloatMatrix(data + "/queries.f32.npy")
        let (_, gtScoreData) = try loadNPY(data + "/gt_cosine_top100_scores.f32.npy")
        let gtScores = gtScoreData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let f = HNSWGraphTests.Fixture(base)
        defer { f.free() }
        let space = f.space(.cosine)
        let t0 = Date()
        let graph = try #require(HNSWGraph.build(space: space, count: f.n, neighborsPerNode: 16, indexingSearchCount: 200, threads: 2, seed: UInt64(ProcessInfo.processInfo.environment["SEXTANT_SEED"] ?? "") ?? 0x5E87_A171))
        print("build 2 threads: \(Date().timeIntervalSince(t0)) s, max level \(graph.maxLevel)")
        let qdir = TemporaryDirectory()
        defer { qdir.cleanup() }
        try QuantizedVectors.write(space: space, count: f.n, segmentID: 1, io: PosixFileIO(), path: qdir.sub("c.q8"))
        let codes = try QuantizedVectors(io: PosixFileIO(), path: qdir.sub("c.q8"), segmentID: 1, count: f.n, dimension: f.d)
        for ef in [10, 16, 32, 64, 128] {
            var hits = 0
            let t = Date()
            for _ in 0..<3 {
                hits = 0
                for (qi, q) in queries.enumerated() {
                    var top = TopK(k: 10)
                    q.withUnsafeBufferPointer { qb in
                        graph.searchQuantized(qb.baseAddress!, qInverseNorm: inverseNorm(q), ef: ef, oversampling: 1, space: space, codes: codes, allow: nil, into: &top, tag: 0)
                    }
                    let tenth = gtScores[qi * 100 + 9]
                    hits += top.sorted().filter { 1 - $0.key >= tenth - 1e-5 }.count
                }
            }
            let qps = Double(queries.count * 3) / Date().timeIntervalSince(t)
            print("int8 ef \(ef): recall \(Double(hits) / Double(queries.count * 10)), QPS \(Int(qps))")
        }
        for ef in [10, 16, 32, 64, 128] {
            var hits = 0
            let t = Date()
            for _ in 0..<3 {
                hits = 0
                for (qi, q) in queries.enumerated() {
                    var top = TopK(k: 10)
                    q.withUnsafeBufferPointer { qb in
                        graph.search(qb.baseAddress!, qInverseNorm: inverseNorm(q), ef: ef, space: space, allow: nil, into: &top, tag: 0)
                    }
                    let tenth = gtScores[qi * 100 + 9]
                    hits += top.sorted().filter { 1 - $0.key >= tenth - 1e-5 }.count
                }
            }
            let qps = Double(queries.count * 3) / Date().timeIntervalSince(t)
            print("ef \(ef): recall \(Double(hits) / Double(queries.count * 10)), QPS \(Int(qps))")
        }
    }
}
