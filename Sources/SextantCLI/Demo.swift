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
            fail("dataset not found (looked in \(candidates.joined(separator: ", "))); pass --data DIR")
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
            }
            let q = try NPYFile(path: dir + "/queries.f32.npy")
            let texts = (try? String(contentsOfFile: dir + "/queries.jsonl", encoding: .utf8))?
                .split(separator: "\n").map { line -> String in
                    let v = try? Array(line.utf8).withUnsafeBytes { try JSONParser.parse($0) }
                    if let id = v?["id"]?.stringValue, let t = v?["text"]?.stringValue { return "\(id): \(t)" }
                    return String(line)
                } ?? []
            for i in 0..<min(queries, q.rows) {
                let start = Date()
                let hits = try c.search(q.row(i), limit: limit, include: .metadata)
                let ms = Date().timeIntervalSince(start) * 1000
                print("\nquery \(i) — \(i < texts.count ? texts[i] : "(vector)")  [\(String(format: "%.1f", ms)) ms, exact]")
                for h in hits {
                    var desc = ""
                    if let s = h.metadata?["short_description"]?.stringValue { desc = s }
                    print(String(format: "  %.4f  ", h.score) + "\(h.id)  \(desc)")
                }
            }
        }
    }
}
