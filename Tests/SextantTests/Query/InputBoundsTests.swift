// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// A database whose flushes and graph builds happen only when a test asks.
private func openWithoutBackgroundWork(_ dir: TemporaryDirectory) throws -> Database {
    var config = Configuration()
    config.backgroundWork = false
    return try Database.open(at: dir.sub("db"), configuration: config)
}

/// A database with one collection of `count` small integer vectors (ids 0..<count, documents "doc i").
private func smallCollection(_ dir: TemporaryDirectory, metric: Metric = .euclidean, count: Int = 20) throws -> (Database, VectorCollection) {
    let db = try openWithoutBackgroundWork(dir)
    let c = try db.createCollection("c", dimension: 4, metric: metric)
    try c.upsert((0..<count).map { Record(id: .int(UInt64($0)), vector: [Float($0 + 1), 1, 0, 0], document: "doc \($0)") })
    return (db, c)
}

@Suite struct SearchLimitTests {
    /// Issue 10: `--limit 10000000000` allocated 40 GB, Int.max aborted in malloc, `--offset Int.max` trapped
    /// on `limit + offset`. Every search entry point now refuses them with invalidArgument naming the cap.
    @Test func hugeLimitsAndOffsetsAreRefusedEverywhere() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c) = try smallCollection(dir)
        defer { db.close() }
        let q: [Float] = [0, 0, 0, 0]
        for (limit, offset) in [(10_000_000_000, 0), (Int.max, 0), (10, Int.max), (Int.max, Int.max), (100_000, 1), (50_001, 50_000)] {
            expectError(.invalidArgument, "100000") { _ = try c.search(q, limit: limit, offset: offset) }
            expectError(.invalidArgument, "100000") { _ = try c.search(q, limit: limit, offset: offset, exact: true) }
            expectError(.invalidArgument, "100000") { _ = try c.search(batch: [q, q], limit: limit, offset: offset) }
            expectError(.invalidArgument, "100000") { _ = try c.search(text: "doc", limit: limit, offset: offset) }
            expectError(.invalidArgument, "100000") { _ = try c.hybridSearch(vector: q, text: "doc", limit: limit, offset: offset) }
        }
        expectError(.invalidArgument, "offset") { _ = try c.hybridSearch(vector: q, text: "doc", offset: -1) }  // was a trap in dropFirst
        expectError(.invalidArgument, "limit") { _ = try c.hybridSearch(vector: q, text: "doc", limit: 0) }
        for ef in [0, -1, 100_001, Int.max] {
            expectError(.invalidArgument, "ef", "100000") { _ = try c.search(q, ef: ef) }
            expectError(.invalidArgument, "ef", "100000") { _ = try c.hybridSearch(vector: q, text: "doc", ef: ef) }
        }
        expectError(.invalidArgument, "candidates") { _ = try c.hybridSearch(vector: q, text: "doc", candidates: Int.max) }
        expectError(.invalidArgument, "candidates") { _ = try c.hybridSearch(vector: q, text: "doc", candidates: 0) }
        expectError(.invalidArgument, "NaN") { _ = try c.search(q, scoreThreshold: .nan) }
        expectError(.invalidArgument, "k1") { _ = try c.search(text: "doc", bm25: BM25Parameters(k1: .infinity)) }
        expectError(.invalidArgument, "k1") { _ = try c.search(text: "doc", bm25: BM25Parameters(k1: .nan)) }
        expectError(.invalidArgument, "k1") { _ = try c.hybridSearch(vector: q, text: "doc", bm25: BM25Parameters(b: 2)) }
        expectError(.invalidArgument, "RRF") { _ = try c.hybridSearch(vector: q, text: "doc", fusion: .reciprocalRank(k: .infinity)) }
        expectError(.invalidArgument, "alpha") { _ = try c.hybridSearch(vector: q, text: "doc", fusion: .weighted(alpha: .nan)) }
    }

    /// A limit larger than the collection is not an error: the search returns every record, and its
    /// memory follows the records (a 100,000-slot heap for 20 records would not fail either, but this
    /// checks the boundary itself is accepted everywhere).
    @Test func theLargestLimitIsAcceptedAndReturnsEveryRecord() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c) = try smallCollection(dir)
        defer { db.close() }
        let q: [Float] = [0, 0, 0, 0]
        let all = try c.search(q, limit: Limits.maxSearchResults)
        #expect(all.map(\.id) == (0..<20).map { RecordID.int(UInt64($0)) })
        #expect(try c.search(q, limit: Limits.maxSearchResults - 5, offset: 5, exact: true).map(\.id) == Array(all.map(\.id).dropFirst(5)))
        #expect(try c.search(q, limit: 10, ef: Limits.maxSearchWidth).count == 10)
        #expect(try c.search(batch: [q, q], limit: Limits.maxSearchResults).map(\.count) == [20, 20])
        #expect(try c.search(text: "doc", limit: Limits.maxSearchResults).count == 20)
        #expect(try c.hybridSearch(vector: q, text: "doc", limit: Limits.maxSearchResults).count == 20)
        // Scroll has no cap: a page never holds more than the collection, and Int.max means "all of it".
        let page = try c.scroll(limit: Int.max)
        #expect(page.records.count == 20 && page.nextAfter == nil)
    }
}

@Suite struct VectorNormLimitTests {
    /// Issue 10: `[3.4e38, 3.4e38, 3.4e38, 3.4e38]` was accepted; its distances overflow Float32.
    @Test(arguments: Metric.allCases)
    func vectorsWhoseDistancesWouldOverflowAreRefused(metric: Metric) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try openWithoutBackgroundWork(dir)
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 4, metric: metric)
        try c.upsert(.int(1), vector: [1, 2, 3, 4])
        let huge: [Float] = [3.4e38, 3.4e38, 3.4e38, 3.4e38]
        expectError(.invalidVector, "record 0", "id 1", "1e18") { try c.upsert(.int(1), vector: huge) }
        expectError(.invalidVector, "record 1", "'big'", "1e18") {
            try c.upsert([Record(id: .int(7), vector: [1, 1, 1, 1]), Record(id: .string("big"), vector: [0, 0, 2e18, 0])])
        }
        #expect(try c.count() == 1)  // nothing of either batch was applied
        #expect(try c.get([.int(1)]).first?.vector == [1, 2, 3, 4])
        expectError(.invalidVector, "query 0", "1e18") { _ = try c.search(huge) }
        expectError(.invalidVector, "query 1", "1e18") { _ = try c.search(batch: [[1, 1, 1, 1], huge]) }
        expectError(.invalidVector, "query 0", "1e18") { _ = try c.hybridSearch(vector: huge, text: "x") }
        // Tiny vectors: only cosine divides by the norm.
        let tiny: [Float] = [1e-20, 0, 0, 0]
        if metric == .cosine {
            expectError(.invalidVector, "1e-18") { try c.upsert(.int(2), vector: tiny) }
            expectError(.invalidVector, "1e-18") { _ = try c.search(tiny) }
            expectError(.invalidVector, "zero vector") { try c.upsert(.int(2), vector: [0, 0, 0, 0]) }
        } else {
            try c.upsert(.int(2), vector: tiny)
            try c.upsert(.int(3), vector: [0, 0, 0, 0])
            #expect(try c.search(tiny, limit: 10, exact: true).allSatisfy { $0.score.isFinite })
        }
        // The JSON Lines import refuses it too, naming the line.
        try #"{"id":9,"vector":[3.4e38,3.4e38,3.4e38,3.4e38]}"#.write(toFile: dir.sub("big.jsonl"), atomically: true, encoding: .utf8)
        expectError(.invalidVector, "big.jsonl: line 1", "1e18") { try c.importRecords(from: .jsonLines(path: dir.sub("big.jsonl"))) }
    }

    /// At the limit, every metric's score between any two vectors — opposite directions, the worst case
    /// for dot, L2 and L1 — stays finite, in the memtable scan, the segment scan and the graph.
    @Test(arguments: Metric.allCases)
    func vectorsAtTheLimitGiveFiniteScores(metric: Metric) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try openWithoutBackgroundWork(dir)
        defer { db.close() }
        let d = 64, n = 1024  // enough rows that the planner walks the graph at ef 16
        let c = try db.createCollection("c", dimension: d, metric: metric, index: IndexConfiguration(minimumRowsForGraph: 16))
        let scale = Float(Limits.maxVectorNorm * 0.999 / Double(d).squareRoot())  // every |component| equal: norm just under 1e18
        let vectors: [[Float]] = (0..<n).map { i in
            let sign: Float = i % 2 == 0 ? 1 : -1
            return (0..<d).map { j in sign * scale * (j == i % d ? -1 : 1) }
        }
        try c.upsert(vectors.enumerated().map { Record(id: .int(UInt64($0.offset)), vector: $0.element) })
        let queries: [[Float]] = [vectors[0], vectors[1], (0..<d).map { _ in -scale }]
        func check(_ stage: String) throws {
            for q in queries {
                let hits = try c.search(q, limit: n, exact: true)
                #expect(hits.count == n)
                #expect(hits.allSatisfy { $0.score.isFinite }, "\(metric) \(stage): \(hits.map(\.score))")
            }
        }
        try check("memtable")
        try c.flush()
        try c.waitForIndexing()
        try check("segment")
        for q in queries {
            let (hits, plan) = try c.searchExplained(q, limit: 10, ef: 16)
            #expect(plan.contains { if case .graph = $0.strategy { return true } else { return false } }, "\(plan)")
            #expect(hits.count == 10 && hits.allSatisfy { $0.score.isFinite }, "\(metric) graph: \(hits.map(\.score))")
        }
    }
}

/// Records stored before the norm limit existed (simulated by committing unvalidated mutations, as a log
/// replay of an old database would) can have infinite or NaN distances. Exact search must still return
/// them, ranked last or first as their key says, deterministically — never drop them.
@Suite struct NonFiniteDistanceTests {
    /// The Float32 key a "lower is better" top-k ranks by, computed independently of the kernels: an
    /// overflow becomes ±inf, NaN ranks as +inf.
    static func oracleKey(_ metric: Metric, _ q: [Float], _ x: [Float]) -> Float {
        var key: Float
        switch metric {
        case .dot: key = -Float(zip(q, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) })
        case .euclidean: key = Float(zip(q, x).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) })
        case .manhattan: key = Float(zip(q, x).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) })
        case .cosine: fatalError("not used")
        }
        return key.isNaN ? .infinity : key
    }

    @Test(arguments: [Metric.euclidean, .dot, .manhattan])
    func exactSearchKeepsRecordsWithInfiniteOrNaNDistances(metric: Metric) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try openWithoutBackgroundWork(dir)
        defer { db.close() }
        let c = try db.createCollection("c", dimension: 4, metric: metric, index: IndexConfiguration(minimumRowsForGraph: 1_000_000))
        let big: Float = 3.4e38
        var vectors: [[Float]] = [
            [big, big, big, big], [-big, -big, -big, -big], [.infinity, -.infinity, 0, 0], [big, -big, big, -big],
        ]
        var rng = RepeatableRandomNumberGenerator(seed: 10)
        for _ in 0..<16 { vectors.append((0..<4).map { _ in Float(Int.random(in: -9...9, using: &rng)) }) }
        vectors.append([big, big, big, big])  // a tie with row 0
        let ids = vectors.indices.map { RecordID.int(UInt64($0)) }
        _ = try c.commit(.init(mutations: zip(ids, vectors).map { .upsert($0, vector: $1, metadata: [], document: nil) }))

        // Query values in {-1, 0, 1}: every partial sum of the kernels overflows (or not) the same way in any
        // summation order, so a Float64 oracle rounded to Float32 predicts the kernels' ±inf and NaN exactly.
        let queries: [[Float]] = [[0, 0, 0, 0], [-1, -1, -1, -1], [1, 1, 1, 1], [1, -1, 0, 0]]
        for stage in ["memtable", "segment"] {
            for q in queries {
                let keys = vectors.map { Self.oracleKey(metric, q, $0) }
                // Rows are in insertion order in both the memtable and the flushed segment, and ties go to
                // the smaller row: the oracle's full ranking.
                let expected = vectors.indices.sorted { keys[$0] < keys[$1] || (keys[$0] == keys[$1] && $0 < $1) }.map { ids[$0] }
                let full = try c.search(q, limit: 100, exact: true)
                #expect(full.map(\.id) == expected, "\(metric) \(stage) q \(q): \(full.map { "\($0.id)=\($0.score)" })")
                // Every limit gives a prefix of the full ranking: nothing dropped because its key is +inf/NaN.
                for k in [1, 3, 5, 19, 21] {
                    let top = try c.search(q, limit: k, exact: true)
                    #expect(top.map(\.id) == Array(expected.prefix(k)), "\(metric) \(stage) k \(k) q \(q)")
                }
                // The filtered scan path (an allow-set of rows) agrees.
                let filtered = try c.search(q, limit: 5, filter: .must(.hasID(Set(ids))), exact: true)
                #expect(filtered.map(\.id) == Array(expected.prefix(5)), "\(metric) \(stage) filtered q \(q)")
            }
            try c.flush()
        }
    }

    @Test func topKIsTheLeastPairsWhateverTheInsertionOrder() {
        var rng = RepeatableRandomNumberGenerator(seed: 3)
        let pool: [Float] = [.infinity, -.infinity, .nan, 0, 1, -1, 2.5]
        for _ in 0..<200 {
            let n = Int.random(in: 1...40, using: &rng)
            let items = (0..<n).map { i in (key: pool.randomElement(using: &rng)!, payload: UInt64(i)) }
            let k = Int.random(in: 1...45, using: &rng)
            var top = TopK(k: k)
            for item in items.shuffled(using: &rng) where !(item.key > top.threshold) { top.insert(item.key, item.payload) }
            let normalized = items.map { (key: $0.key.isNaN ? Float.infinity : $0.key, payload: $0.payload) }
            let expected = normalized.sorted { $0.key < $1.key || ($0.key == $1.key && $0.payload < $1.payload) }.prefix(k)
            #expect(top.sorted().map(\.payload) == expected.map(\.payload))
        }
    }
}

@Suite struct BatchSizeLimitTests {
    /// The size the limit is computed from is exactly what the WAL encoder writes.
    @Test func theEncodedSizeMatchesTheWALEncoder() {
        var rng = RepeatableRandomNumberGenerator(seed: 8)
        for _ in 0..<50 {
            let mutations: [Mutation] = (0..<Int.random(in: 0...20, using: &rng)).map { i in
                let id: RecordID = Bool.random(using: &rng) ? .int(UInt64(i)) : .string(String(repeating: "é", count: Int.random(in: 1...50, using: &rng)))
                if Int.random(in: 0..<4, using: &rng) == 0 { return .delete(id) }
                let doc: String? = Bool.random(using: &rng) ? String(repeating: "ü", count: Int.random(in: 0...30, using: &rng)) : nil
                let meta = Array(repeating: UInt8(ascii: "x"), count: Int.random(in: 0...40, using: &rng))
                return .upsert(id, vector: (0..<Int.random(in: 1...16, using: &rng)).map { Float($0) }, metadata: meta, document: doc)
            }
            var out = ByteWriter()
            WALRecord.encodeBatch(mutations, seq: 1, syncedSeq: 0, into: &out)
            #expect(Limits.batchRecordBytes(mutations) == out.bytes.count)
        }
    }

    /// Issue 10: a 1.1 GB batch was acknowledged although the log reader refuses records over 1 GiB (it
    /// could never be replayed). Now it is refused before anything is written.
    @Test func aBatchOverOneGiBIsRefusedBeforeAnythingIsWritten() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try openWithoutBackgroundWork(dir)
        defer { db.close() }
        let d = 65_536
        let c = try db.createCollection("c", dimension: d, metric: .euclidean)
        try c.upsert(.int(0), vector: [Float](repeating: 1, count: d))
        let walBytes = { () -> Int in
            let wal = try FileManager.default.subpathsOfDirectory(atPath: dir.sub("db/collections")).filter { $0.hasSuffix(".log") }
            return try wal.reduce(0) { $0 + ((try FileManager.default.attributesOfItem(atPath: dir.sub("db/collections/") + $1)[.size] as? Int) ?? 0) }
        }
        let before = try walBytes()
        // 4,200 records sharing one 256 KiB vector (copy-on-write: the test holds one copy): ~1.1 GB encoded.
        let shared = [Float](repeating: 0.5, count: d)
        let records = (1...4200).map { Record(id: .int(UInt64($0)), vector: shared) }
        expectError(.invalidArgument, "1073741824", "1 GiB", "4200 records") { try c.upsert(records) }
        #expect(try c.count() == 1)
        #expect(try walBytes() == before)
        // The largest integer count that fits is accepted by the check (not written here: it is a GiB).
        let fits = (Limits.maxBatchBytes - 21) / Limits.encodedBytes(.upsert(.int(1), vector: shared, metadata: [], document: nil))
        #expect(Limits.batchRecordBytes(Array(repeating: .upsert(.int(1), vector: shared, metadata: [], document: nil), count: fits)) <= Limits.maxBatchBytes)
        #expect(throws: Never.self) {
            try Limits.checkBatchBytes(Array(repeating: .upsert(.int(1), vector: shared, metadata: [], document: nil), count: fits))
        }
        expectError(.invalidArgument, "1 GiB") {
            try Limits.checkBatchBytes(Array(repeating: .upsert(.int(1), vector: shared, metadata: [], document: nil), count: fits + 1))
        }
        // Deletes count too.
        expectError(.invalidArgument, "1 GiB") { try Limits.checkBatchBytes(Array(repeating: .delete(.string(String(repeating: "k", count: 1024))), count: 1_100_000)) }
    }

    @Test func importBatchSizesAreBounded() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c) = try smallCollection(dir)
        defer { db.close() }
        try #"{"id":100,"vector":[1,2,3,4]}"#.write(toFile: dir.sub("one.jsonl"), atomically: true, encoding: .utf8)
        for size in [0, -1, Limits.maxImportBatchRecords + 1, Int.max] {
            expectError(.invalidArgument, "batch size", "1000000") { try c.importRecords(from: .jsonLines(path: dir.sub("one.jsonl")), batchSize: size) }
        }
        #expect(try c.importRecords(from: .jsonLines(path: dir.sub("one.jsonl")), batchSize: Limits.maxImportBatchRecords) == 1)
    }
}

@Suite struct RecordIDParsingTests {
    @Test func digitsAreIntegerIdsAndOverflowIsAnError() throws {
        #expect(try RecordID(parsing: "42") == .int(42))
        #expect(try RecordID(parsing: "18446744073709551615") == .int(.max))
        #expect(try RecordID(parsing: "007") == .int(7))
        #expect(try RecordID(parsing: "-5") == .string("-5"))
        #expect(try RecordID(parsing: "4a") == .string("4a"))
        #expect(try RecordID(parsing: "") == .string(""))
        for text in ["18446744073709551616", "99999999999999999999999999"] {
            expectError(.invalidArgument, "18446744073709551615", text) { _ = try RecordID(parsing: text) }
        }
    }

    /// The ids file of an npy import follows the same rule (it used to store overflowing digits as a string).
    @Test func anIdsFileWithAnOverflowingIdIsRefusedNamingTheLine() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c) = try smallCollection(dir)
        defer { db.close() }
        try writeNPY(dir.sub("v.npy"), [[1, 2, 3, 4], [5, 6, 7, 8]])
        try "5\n18446744073709551616\n".write(toFile: dir.sub("ids.txt"), atomically: true, encoding: .utf8)
        expectError(.invalidArgument, "ids.txt: line 2", "18446744073709551615") {
            try c.importRecords(from: .npy(vectors: dir.sub("v.npy"), ids: dir.sub("ids.txt"), records: nil))
        }
        #expect(try c.count() == 20)
    }

    /// `.npy` headers whose shape overflows or is negative: a parse error naming the file, not a trap.
    @Test(arguments: ["(4611686018427387904, 4)", "(-10, 4)", "(4, -1)", "(9223372036854775807, 9223372036854775807)", "(3037000500, 3037000500)"])
    func npyShapesThatOverflowOrAreNegativeAreRefused(shape: String) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let (db, c) = try smallCollection(dir)
        defer { db.close() }
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)] + Array(header.utf8) + [UInt8](repeating: 0, count: 64)
        try Data(bytes).write(to: URL(fileURLWithPath: dir.sub("v.npy")))
        expectError(.parse, "v.npy") { _ = try NPYFile(path: dir.sub("v.npy")) }
        expectError(.parse, "v.npy") { try c.importRecords(from: .npy(vectors: dir.sub("v.npy"), ids: nil, records: nil)) }
        #expect(try c.count() == 20)
    }

    @Test func continuationTokensRoundTripAndGarbageIsRefused() throws {
        for id: RecordID in [.int(0), .int(.max), .string("a"), .string("s:x"), .string("ü 7")] {
            #expect(try RecordID(continuationToken: id.continuationToken) == id)
        }
        for bad in ["garbage!!", "", "i:", "i:-1", "i:x", "i:18446744073709551616", "s:", "x:1", "42"] {
            expectError(.invalidArgument, "continuation token", "i:N", "s:TEXT") { _ = try RecordID(continuationToken: bad) }
        }
    }
}

@Suite struct ErrorMessageEscapingTests {
    @Test func quotedEscapesControlCharactersAndTruncates() {
        #expect(SextantError.quoted("docs") == "'docs'")
        #expect(SextantError.quoted("a\u{1B}[31mred\n") == #"'a\u{1B}[31mred\n'"#)
        #expect(SextantError.quoted("it's a\\b") == #"'it\'s a\\b'"#)
        #expect(SextantError.quoted("x\u{202E}y\u{0}") == #"'x\u{202E}y\0'"#)  // a bidi override, NUL
        #expect(SextantError.quoted("naïve 日本") == "'naïve 日本'")
        let long = String(repeating: "a", count: 1_000_000)
        let q = SextantError.quoted(long)
        #expect(q.count < 300 && q.hasSuffix("…' (1000000 characters)"))
    }

    /// Every message is one line of printable text, whoever built it: names echoed by the database layer
    /// (collection names, "no collection named …") included.
    @Test func everyMessageIsEscaped() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        for name in ["x\u{1B}[31mred", "a\nb", "tab\there\u{7F}"] {
            do {
                _ = try db.collection(name)
                Issue.record("found a collection named \(name)")
            } catch {
                #expect(error.code == .notFound)
                #expect(!error.message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(error.message.debugDescription)")
            }
            do {
                _ = try db.createCollection(name, dimension: 4)
                Issue.record("created a collection named \(name)")
            } catch {
                #expect(error.code == .invalidName)
                #expect(!error.message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(error.message.debugDescription)")
            }
        }
        // An absurdly long name echoed whole by the database layer: the message keeps its ends, not a megabyte.
        expectError(.notFound, "no collection named", "characters omitted") { _ = try db.collection(String(repeating: "n", count: 1_000_000)) }
        do { _ = try db.collection(String(repeating: "n", count: 1_000_000)) } catch { #expect(error.message.count < 2100) }
        let c = try db.createCollection("c", dimension: 2)
        expectError(.dimensionMismatch, #"id 'evil\u{1B}]0;title\u{7}'"#) { try c.upsert(.string("evil\u{1B}]0;title\u{7}"), vector: [1, 2, 3]) }
    }
}
