// Sextant — an embedded vector database. Licensed under Apache-2.0.

import ArgumentParser
import Foundation
import Sextant

/// The main job end to end: import real embeddings with metadata into the default database, then answer
/// nearest-neighbour queries from it.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import the Debian package embeddings into ./sextant-data and search them.",
        discussion: """
            Uses ../shared/data/debian-minilm-20k (or --data DIR): 20,000 all-MiniLM-L6-v2 embeddings of Debian
            package descriptions. The first run imports them into collection 'debian'; later runs reuse it.
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Dataset directory (base.f32.npy, records.jsonl, queries.f32.npy, queries.jsonl).")
    var data: String?
    @Option(help: "Queries to run.") var queries: Int = 3
    @Option(help: "Hits per query.") var limit: Int = 5

    func run() throws {
        let candidates = [data, "../shared/data/debian-minilm-20k", "shared/data/debian-minilm-20k"].compactMap { $0 }
        guard let dir = candidates.first(where: { FileManager.default.fileExists(atPath: $0 + "/base.f32.npy") }) else {
            if data != nil { fail("dataset not found in \(data!) (needs base.f32.npy, records.jsonl, queries.f32.npy)") }
            try runSynthetic()
            return
        }
        try withDatabase(global) { db in
            let c: VectorCollection
            if db.collectionNames().contains("debian") {
                c = try db.collection("debian")
                print("collection 'debian' in \(db.path): \(try c.count()) records")
            } else {
                c = try db.createCollection("debian", dimension: 384, metric: .cosine)
                let start = Date()
                var progress = ProgressLine(total: 20_000)
                let n = try c.importRecords(from: .npy(vectors: dir + "/base.f32.npy", ids: nil, records: dir + "/records.jsonl")) {
                    progress.update($0)
                }
                progress.finish()
                let secs = Date().timeIntervalSince(start)
                print(String(format: "imported %d records into %@ in %.2fs (%.0f records/s, durable)", n, db.path, secs, Double(n) / secs))
                let t = Date()
                try c.flush()
                try c.waitForIndexing()
                print(String(format: "built the HNSW graph (M 16, efConstruction 200) in %.2fs", Date().timeIntervalSince(t)))
            }
            let indexed = (try? c.info().segments.allSatisfy { $0.index == "graph" }) ?? false
            let how = indexed ? "HNSW, ef \(IndexConfiguration.defaultSearchWidth)" : "exact scan"
            let q = try NPYFile(path: dir + "/queries.f32.npy")
            let texts = (try? String(contentsOfFile: dir + "/queries.jsonl", encoding: .utf8))?
                .split(separator: "\n").map { line -> String in
                    let v = try? Array(line.utf8).withUnsafeBytes { try JSONParser.parse($0) }
                    if let id = v?["id"]?.stringValue, let t = v?["text"]?.stringValue { return "\(id): \(t)" }
                    return String(line)
                } ?? []
            for i in 0..<min(queries, q.rows) {
                // Single-threaded, straight from the memory-mapped segment and graph.
                let start = Date()
                let hits = try c.search(q.row(i), limit: limit, include: .metadata)
                let ms = Date().timeIntervalSince(start) * 1000
                print("\nquery \(i) — \(i < texts.count ? texts[i] : "(vector)")  [\(String(format: "%.2f", ms)) ms, \(how)]")
                for h in hits {
                    var desc = ""
                    if let s = h.metadata?["short_description"]?.stringValue { desc = s }
                    print(String(format: "  %.4f  ", h.score) + "\(h.id)  \(desc)")
                }
            }
        }
    }

    /// Without the dataset: seeded random clusters, so the command still shows the whole path.
    private func runSynthetic() throws {
        print("dataset not found (../shared/data/debian-minilm-20k); using 20,000 synthetic 64-d vectors")
        var state: UInt64 = 42
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 - 1
        }
        let centers = (0..<20).map { _ in (0..<64).map { _ in next() * 3 } }
        try withDatabase(global) { db in
            let c: VectorCollection
            if db.collectionNames().contains("synthetic") {
                c = try db.collection("synthetic")
            } else {
                c = try db.createCollection("synthetic", dimension: 64, metric: .euclidean)
                let start = Date()
                for b in 0..<20 {
                    try c.upsert((0..<1000).map { i in
                        let id = b * 1000 + i
                        return Record(id: .int(UInt64(id)), vector: centers[id % 20].map { $0 + next() }, metadata: ["cluster": .int(Int64(id % 20))])
                    })
                }
                print(String(format: "imported 20000 records into %@ in %.2fs (durable)", db.path, Date().timeIntervalSince(start)))
            }
            for qi in 0..<queries {
                let hits = try c.search(centers[qi % 20], limit: limit, include: .metadata)
                print("\nquery \(qi): center of cluster \(qi % 20)")
                for h in hits { print(String(format: "  %.4f  ", h.score) + "\(h.id)  \(h.metadata.map { "\($0)" } ?? "")") }
            }
        }
    }
}
