// Sextant — an embedded vector database. Licensed under Apache-2.0.

import ArgumentParser
import Foundation
import Sextant

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import records from JSON Lines or a NumPy .npy file.",
        discussion: """
            JSON Lines: one {"id": …, "vector": […], "metadata": {…}, "document": "…"} per line.
            NPY: a float32 [n, d] array (float16/float64 are converted); ids from --ids (one per line), else from
            the "id" of each --records line, else 0…n−1; metadata and documents from --records (JSON Lines in
            the same order, "vector" absent).
            After each batch is durable, prints "committed N" (N = records committed so far) and flushes.
            A batch holds at most 1000000 records and 1 GiB encoded (about 4 bytes per vector value plus \
            ids, metadata and documents); a larger one is refused before anything of it is written.
            Ids in an --ids file follow the CLI's rule: all digits = an integer id (at most \
            18446744073709551615), anything else = a string id.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument(help: "Input file.") var file: String
    @Option(help: "jsonl | npy (default: from the file extension).") var format: String?
    @Option(help: "Ids, one per line (npy).") var ids: String?
    @Option(help: "Metadata and documents as JSON Lines (npy).") var records: String?
    @Option(help: "Records per atomic, durable batch (1…1000000; at most 1 GiB encoded).") var batch: Int = 1000
    @Flag(help: "Exit once the records are durable, without waiting for the graphs (they are built on a later open; until then search scans those segments).")
    var noIndexWait = false
    @Option(help: "auto | bar | json | none (json: JSON Lines events on stderr).") var progress: String = "auto"

    func run() throws {
        let fmt = format ?? (file.hasSuffix(".npy") ? "npy" : "jsonl")
        let source: ImportSource
        switch fmt {
        case "jsonl", "json": source = .jsonLines(path: file)
        case "npy": source = .npy(vectors: file, ids: ids, records: records)
        default: fail("unknown format \(SextantError.quoted(fmt)) (use jsonl or npy)")
        }
        if fmt != "npy" && (ids != nil || records != nil) { fail("--ids and --records apply to --format npy only") }
        guard let pmode = ProgressLine.Mode(rawValue: progress) else { fail("unknown progress mode \(SextantError.quoted(progress)) (use auto, bar, json or none)") }
        let total = (try? NPYFile(path: file)).map(\.rows)
        try withDatabase(global) { db in
            let c = try db.collection(name)
            var progress = ProgressLine(total: fmt == "npy" ? total : nil, mode: pmode)
            let start = Date()
            let n: Int
            do {
                n = try c.importRecords(from: source, batchSize: batch) { committed in
                    Output.line("committed \(committed)")
                    Output.flush()
                    progress.update(committed, phase: "import")
                }
            } catch let e as SextantError {
                progress.finish()
                throw e
            }
            progress.update(n, phase: "import", force: true)
            progress.finish()
            let secs = Date().timeIntervalSince(start)
            FileHandle.standardError.write(Data(String(format: "imported %d records in %.2fs (%.0f records/s)\n", n, secs, Double(n) / max(secs, 1e-9)).utf8))
            if !noIndexWait {
                let t = Date()
                try c.flush()
                try c.waitForIndexing()
                let info = try c.info()
                // Live records on both sides: `indexedRows` counts every row of a graph segment, deleted
                // and replaced ones included, which can exceed the number of live records.
                let indexed = info.segments.filter { $0.index == "graph" }.reduce(0) { $0 + $1.liveRows }
                let exact = info.count - indexed
                FileHandle.standardError.write(Data(String(
                    format: "indexed %d of %d records in %.2fs%@\n", indexed, info.count, Date().timeIntervalSince(t),
                    exact > 0 ? " (the other \(exact) are searched exactly: segments too small for a graph, or not flushed)" : "").utf8))
            }
        }
    }
}

struct Upsert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Insert or replace one record.",
        discussion: """
            ID: all digits = an integer id (at most 18446744073709551615: more digits are an error, as \
            in a JSON Lines import), i:N = integer id N, s:TEXT = string id TEXT, anything else = a string id.
            The vector's values must be finite and its norm at most 1e18 (at least 1e-18 under cosine).
            """)
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument(help: "The id: digits = integer (≤ 18446744073709551615), s:TEXT = string, i:N = integer.") var id: String
    @Option(help: "The vector as a JSON array.") var vector: String
    @Option(help: "Metadata as JSON.") var metadata: String?
    @Option(help: "Document text.") var document: String?
    @Flag(help: "Treat the id as a string even if it is all digits.") var stringId = false

    func run() throws {
        let v = parseVector(vector)
        var meta: JSONValue? = nil
        if let metadata {
            do { meta = try Array(metadata.utf8).withUnsafeBytes { try JSONParser.parse($0) } } catch {
                fail("--metadata is not valid JSON: \((error as? SextantError)?.message ?? "\(error)")")
            }
        }
        try withDatabase(global) { db in
            try db.collection(name).upsert(parseID(id, forceString: stringId), vector: v, metadata: meta, document: document)
            Output.line(global.json ? #"{"upserted":1}"# : "upserted 1 record")
            Output.flush()
        }
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print records by id as JSON Lines (missing ids are reported on stderr).")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument(help: "Ids: digits = integer id (≤ 18446744073709551615), s:TEXT = string id, i:N = integer id.") var ids: [String]
    @Flag(help: "Treat every id as a string.") var stringIds = false
    @Flag(help: "Leave the vectors out.") var noVector = false

    func run() throws {
        let wanted = ids.map { parseID($0, forceString: stringIds) }
        try withDatabase(global, readOnly: true) { db in
            let found = try db.collection(name).get(wanted, include: noVector ? [.metadata, .document] : .all)
            JSONOut.writeRecords(found)
            Output.flush()
            let missing = Set(wanted).subtracting(found.map(\.id))
            for id in wanted where missing.contains(id) {
                FileHandle.standardError.write(Data("not found: \(id.quotedForMessages)\n".utf8))
            }
            if !missing.isEmpty { throw ExitCode(1) }
        }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete records by id, or every record passing --filter (durable before it returns).")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument var ids: [String] = []
    @Flag(help: "Treat every id as a string.") var stringIds = false
    @Option(help: "Delete the records passing this filter (Qdrant filter JSON) instead of ids.") var filter: String?

    func run() throws {
        guard ids.isEmpty != (filter == nil) else { fail("give ids or --filter, not both and not neither") }
        let parsed = filter.map(parseFilter)
        try withDatabase(global) { db in
            let c = try db.collection(name)
            let n = try parsed.map { try c.delete(filter: $0) } ?? c.delete(ids.map { parseID($0, forceString: stringIds) })
            Output.line(global.json ? #"{"deleted":\#(n)}"# : "deleted \(n) record(s)")
            Output.flush()
        }
    }
}

struct Count: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the number of live records (passing --filter, if given).")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Option(help: "Count only records passing this filter (Qdrant filter JSON).") var filter: String?

    func run() throws {
        let parsed = filter.map(parseFilter)
        try withDatabase(global, readOnly: true) { db in
            let c = try db.collection(name)
            let n = try parsed.map { try c.count(filter: $0) } ?? c.count()
            Output.line(global.json ? #"{"count":\#(n)}"# : "\(n)")
            Output.flush()
        }
    }
}

struct Scroll: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List records in id order, a page at a time.",
        discussion: """
            Prints one JSON record per line. When more records follow, the last line is
            {"next": "TOKEN"}; pass it back with --after TOKEN for the next page.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Option(help: "Records per page (any positive number; a page never holds more than the collection).") var limit: Int = 100
    @Option(help: "Continuation token from the previous page: i:N or s:TEXT, as its {\"next\": …} line gives it.") var after: String?
    @Option(help: "List only records passing this filter (Qdrant filter JSON).") var filter: String?
    @Flag(help: "Include vectors.") var withVector = false

    func run() throws {
        let afterID = after.map { token in
            do throws(SextantError) { return try RecordID(continuationToken: token) } catch { fail("--after: \(error.message)") }
        }
        let parsed = filter.map(parseFilter)
        try withDatabase(global, readOnly: true) { db in
            let page = try db.collection(name).scroll(after: afterID, limit: limit, filter: parsed, include: withVector ? .all : [.metadata, .document])
            JSONOut.writeRecords(page.records)
            if let next = page.nextAfter {
                var out: [UInt8] = Array(#"{"next":"#.utf8)
                JSONWriter.write(.string(next.continuationToken), into: &out)
                out.append(contentsOf: Array("}\n".utf8))
                Output.write(out)
            }
            Output.flush()
        }
    }
}

struct Search: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Vector, full-text (BM25) or hybrid search; prints {\"query\": i, \"hits\": [{\"id\", \"score\"}, …]} per query.",
        discussion: """
            --vector or --queries: nearest neighbours. Cosine and dot scores are similarities (higher is better);
            euclidean and manhattan are distances (lower is better).
            --text: BM25 over the records' documents (higher is better).
            --vector with --text: hybrid; both sides rank candidates, fused by --fusion rrf (reciprocal rank,
            constant --rrf-k) or weighted (alpha · vector + (1 − alpha) · text, scores normalized to [0, 1]).
            With --explain, hybrid hits carry each side's score and rank.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Option(help: "One query vector as a JSON array.") var vector: String?
    @Option(help: "Many queries: a float32 [n, d] .npy file (searched on all cores).") var queries: String?
    @Option(help: "Full-text query (BM25 over documents); with --vector, a hybrid search.") var text: String?
    @Option(help: "Hybrid fusion: rrf | weighted.") var fusion: String = "rrf"
    @Option(help: "Weighted fusion: the vector side's weight, 0…1.") var alpha: Double = 0.5
    @Option(help: "Reciprocal rank fusion constant.") var rrfK: Double = 60
    @Option(help: "BM25 k1 (0…1000).") var k1: Double = 1.2
    @Option(help: "BM25 b (0…1).") var b: Double = 0.75
    @Option(help: "Results per query (limit + offset ≤ 100000; more than the collection holds is fine).") var limit: Int = 10
    @Option(help: "Skip this many of the best results first (paging).") var offset: Int = 0
    @Option(help: "Only records passing this filter (Qdrant filter JSON).") var filter: String?
    @Option(help: "Keep hits scoring at least this (cosine, dot) or at most this (euclidean, manhattan).") var scoreThreshold: Float?
    @Option(help: "HNSW beam width (ef, 1…100000); larger finds more true neighbours, slower. Default 64.") var ef: Int?
    @Flag(help: "Exact search: scan every row instead of using graphs.") var exact = false
    @Flag(help: "Print the plan chosen per segment (to stderr), e.g. graph vs exact scan of the filtered rows.") var explain = false
    @Flag(help: "Include all metadata.") var withMetadata = false
    @Option(help: "Include only these metadata keys (comma-separated; dots reach into objects).") var metadataKeys: String?
    @Flag var withDocument = false
    @Flag var withVector = false

    func run() throws {
        guard !(vector != nil && queries != nil), vector != nil || queries != nil || text != nil else {
            fail("give --vector, --queries or --text (--text may join --vector for a hybrid search)")
        }
        if text != nil && queries != nil { fail("--text combines with --vector, not with --queries") }
        let fusionMode: Fusion
        switch fusion {
        case "rrf": fusionMode = .reciprocalRank(k: rrfK)
        case "weighted": fusionMode = .weighted(alpha: alpha)
        default: fail("unknown fusion \(SextantError.quoted(fusion)) (use rrf or weighted)")
        }
        var qs: [[Float]] = []
        if let vector { qs = [parseVector(vector)] }
        var queryFile: NPYFile?
        if let queries {
            do throws(SextantError) { queryFile = try NPYFile(path: queries) } catch { fail(error.message) }
        }
        var include: Include = []
        let keys = metadataKeys.map { $0.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) } }
        if withMetadata || keys != nil { include.insert(.metadata) }
        if withDocument { include.insert(.document) }
        if withVector { include.insert(.vector) }
        let parsed = filter.map(parseFilter)
        try withDatabase(global, readOnly: true) { db in
            let c = try db.collection(name)
            var results: [[SearchHit]]
            if let text, qs.isEmpty {
                results = [try c.search(text: text, limit: limit, offset: offset, filter: parsed, scoreThreshold: scoreThreshold, include: include, bm25: BM25Parameters(k1: k1, b: b))]
            } else if let text {
                var hits = try c.hybridSearch(
                    vector: qs[0], text: text, limit: limit, offset: offset, filter: parsed, fusion: fusionMode, include: include, ef: ef,
                    bm25: BM25Parameters(k1: k1, b: b))
                if !explain { for i in hits.indices { hits[i].explanation = nil } }
                results = [hits]
            } else if let queryFile, let queries {
                // Many queries: every one is checked before any output, then they are searched and printed
                // a chunk at a time, so memory holds one chunk's hits (about a million), not every query's.
                try VectorCollection.validateLimits(limit: limit, offset: offset, ef: ef, scoreThreshold: scoreThreshold)
                for i in 0..<queryFile.rows {
                    do throws(SextantError) { try c.validateQuery(queryFile.row(i), index: i) } catch {
                        fail("\(queries): row \(i): \(error.message.replacingOccurrences(of: "query \(i): ", with: ""))")
                    }
                }
                let chunk = max(1, min(1024, 1_000_000 / (limit + offset)))
                var start = 0
                while start < queryFile.rows {
                    let end = min(queryFile.rows, start + chunk)
                    let batch = (start..<end).map { queryFile.row($0) }
                    let hits = try c.search(
                        batch: batch, limit: limit, offset: offset, filter: parsed, scoreThreshold: scoreThreshold, include: include, ef: ef, exact: exact)
                    Self.print(hits, firstQuery: start, keys: keys)
                    queryFile.releaseRows(before: end)
                    start = end
                }
                Output.flush()
                return
            } else {
                let (hits, plan) = try c.searchExplained(
                    qs[0], limit: limit, offset: offset, filter: parsed, scoreThreshold: scoreThreshold, include: include, ef: ef, exact: exact)
                results = [hits]
                if explain {
                    for step in plan { FileHandle.standardError.write(Data("plan: \(step)\n".utf8)) }
                }
            }
            Self.print(results, firstQuery: 0, keys: keys)
            Output.flush()
        }
    }
}

extension Search {
    /// One JSON line per query, `{"query": i, "hits": [...]}`, numbered from `firstQuery`.
    static func print(_ results: [[SearchHit]], firstQuery: Int, keys: [String]?) {
        for (i, var hits) in results.enumerated() {
            if let keys {
                for j in hits.indices { hits[j].metadata = hits[j].metadata?.projected(keys) }
            }
            var out: [UInt8] = Array(#"{"query":\#(firstQuery + i),"hits":["#.utf8)
            for (j, h) in hits.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                JSONOut.hit(h, into: &out)
            }
            out.append(contentsOf: Array("]}\n".utf8))
            Output.write(out)
        }
    }
}

/// Parses a --filter value, or exits with the parser's message (which names the offending part).
func parseFilter(_ text: String) -> Filter {
    do { return try Filter(json: text) } catch { fail("--filter: \(error.message)") }
}
