// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `sextant import`, SIGKILLs it at random moments, reopens, and checks that every batch it
/// reported as committed is there and no partial batch is visible.
@Suite struct KillDuringImportTests {
    static let rounds = Int(ProcessInfo.processInfo.environment["SEXTANT_CRASH_ROUNDS"] ?? "") ?? 24

    @Test func everyCommittedBatchSurvivesSIGKILL() throws {
        let dir = TemporaryDirectory("sextant-crash")
        defer { dir.cleanup() }
        let total = 12_000, dim = 32, batch = 200
        let vectors = try writeJSONLines(dir.sub("data.jsonl"), count: total, dimension: dim, seed: 11)
        try writeNPY(dir.sub("data.npy"), vectors)
        let db = dir.sub("db")
        let cli = CLIRunner(database: db)
        var rng = RepeatableRandomNumberGenerator(seed: 2024)
        var killedMidway = 0

        for round in 0..<Self.rounds {
            let name = "r\(round)"
            // Graph builds (debug mode: slow) would starve the import; one round in six keeps them so kills
            // also land while a graph is being built and published.
            let graphs = round % 6 == 5 ? [] : ["--min-graph-rows", "1000000000"]
            #expect(try cli.run(["create", name, "--dim", "\(dim)", "--metric", "euclidean"] + graphs).status == 0)
            let args = round % 3 == 2
                ? ["import", name, dir.sub("data.npy"), "--batch", "\(batch)", "--no-index-wait"]
                : ["import", name, dir.sub("data.jsonl"), "--batch", "\(batch)", "--no-index-wait"]
            // Small memtables in some rounds, so kills also land during freezes, flushes and log rotation.
            // (Given to this process only: a setenv would reach the CLI runs of tests running in parallel.)
            let (process, pipe) = try cli.start(args, environment: ["SEXTANT_MEMTABLE_BYTES": round % 2 == 0 ? "65536" : ""])
            // Kill after a random number of acknowledged batches plus a random sub-batch delay, so the
            // kill lands anywhere inside a batch: before the write, mid-write, between write and fsync,
            // during apply, freeze or flush. Target 0 kills before the first batch completes.
            let target = Int.random(in: 0..<(total / batch - 1), using: &rng)
            var seen = ""
            while target > 0 && seen.components(separatedBy: "committed ").count - 1 < target {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }  // exited
                seen += String(decoding: chunk, as: UTF8.self)
            }
            usleep(UInt32.random(in: 0...(target == 0 ? 60_000 : 4_000), using: &rng))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let output = seen + String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let acknowledged = output.split(separator: "\n").compactMap { line -> Int? in
                line.hasPrefix("committed ") ? Int(line.dropFirst(10)) : nil
            }.max() ?? 0
            if acknowledged < total { killedMidway += 1 }

            let database = try Database.open(at: db)
            let c = try database.collection(name)
            let count = try c.count()
            #expect(count >= acknowledged, "round \(round): \(acknowledged) acknowledged, \(count) present")
            #expect(count % batch == 0 || count == total, "round \(round): \(count) records is not a whole number of batches")
            // Exactly the prefix 0..<count, with the right vectors.
            let probe = [0, max(0, count - 1), count, min(total - 1, count + batch)] + (0..<20).map { _ in Int.random(in: 0..<max(1, count), using: &rng) }
            for i in Set(probe) where i < total {
                let got = try c.get([.int(UInt64(i))])
                if i < count {
                    #expect(got.first?.vector == vectors[i], "round \(round): record \(i) missing or wrong")
                } else {
                    #expect(got.isEmpty, "round \(round): record \(i) present beyond the committed prefix")
                }
            }
            database.close()
        }
        #expect(killedMidway >= Self.rounds / 2, "most kills should land mid-import (\(killedMidway) did)")
        #expect(try cli.run(["verify"]).status == 0)
    }
}
