// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

@Suite struct TextSearchTests {
    static let corpus: [String] = [
        "The quick brown fox jumps over the lazy dog",
        "A fast vector database for local search",
        "Vector search with HNSW graphs; vector quantization",
        "Full-text search ranks documents by BM25",
        "Brown bears fish; the fox watches",
        "Database backups and restores that simply work",
        "Search, search, search: the engine searches everything",
        "Lazy evaluation in functional languages",
        "Quick sort and merge sort",
        "Fox news: a brown fox crossed the road",
        "Graph databases store nodes and edges",
        "The dog sleeps",
    ]

    /// An independent BM25: the textbook formula over the live documents, words split the simple way.
    static func reference(_ docs: [Int: String], _ query: String, k1: Double = 1.2, b: Double = 0.75) -> [Int: Double] {
        func words(_ s: String) -> [String] { s.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init) }
        let tokenized = docs.mapValues(words)
        let n = Double(tokenized.count)
        let avg = Double(tokenized.values.reduce(0) { $0 + $1.count }) / n
        var out: [Int: Double] = [:]
        for term in Set(words(query)) {
            let df = Double(tokenized.values.filter { $0.contains(term) }.count)
            let idf = log(1 + (n - df + 0.5) / (df + 0.5))
            for (id, w) in tokenized {
                let tf = Double(w.filter { $0 == term }.count)
                if tf == 0 { continue }
                let norm: Double = k1 * (1 - b + b * Double(w.count) / avg)
                let gain: Double = idf * tf * (k1 + 1) / (tf + norm)
                out[id, default: 0] += gain
            }
        }
        return out
    }

    func expectMatches(_ hits: [SearchHit], _ ref: [Int: Double], _ stage: String) {
        #expect(hits.count == ref.count, "\(stage): \(hits.count) hits, reference has \(ref.count)")
        for h in hits {
            guard case .int(let id) = h.id, let want = ref[Int(id)] else {
                Issue.record("\(stage): unexpected hit \(h.id)")
                continue
            }
            #expect(abs(Double(h.score) - want) <= 1e-5 * max(1, want), "\(stage): id \(id) scored \(h.score), reference \(want)")
        }
        let scores = hits.map(\.score)
        #expect(scores == scores.sorted(by: >), "\(stage): not best first")
    }

    /// BM25 scores equal the reference, and do not change with how records are split into segments, with
    /// deletions, or across compaction and reopen.
    @Test func bm25MatchesAReferenceWhateverTheSegmentation() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.backgroundWork = false
        var docs: [Int: String] = [:]
        let queries = ["brown fox", "vector search", "search", "lazy dog database", "nothing matches zzz", "SEARCH the Fox"]
        func record(_ i: Int) -> Record {
            docs[i] = Self.corpus[i]
            return Record(id: .int(UInt64(i)), vector: [Float(i), 1], document: Self.corpus[i])
        }
        do {
            let db = try Database.open(at: dir.path, configuration: config)
            let c = try db.createCollection("t", dimension: 2, metric: .euclidean)
            try c.upsert([Record(id: .int(100), vector: [0, 0])])  // no document: not counted in N
            try c.upsert((0..<5).map(record))
            for q in queries { expectMatches(try c.search(text: q, limit: 50), Self.reference(docs, q), "memtable, \(q)") }
            try c.flush()
            try c.upsert((5..<9).map(record))
            try c.flush()
            try c.upsert((9..<12).map(record))
            for q in queries { expectMatches(try c.search(text: q, limit: 50), Self.reference(docs, q), "2 segments + memtable, \(q)") }
            try c.delete([.int(4), .int(9)])
            docs[4] = nil
            docs[9] = nil
            for q in queries { expectMatches(try c.search(text: q, limit: 50), Self.reference(docs, q), "after deletes, \(q)") }
            try c.compact()
            for q in queries { expectMatches(try c.search(text: q, limit: 50), Self.reference(docs, q), "compacted, \(q)") }
            // Other parameters, limit, offset and filter.
            expectMatches(try c.search(text: "brown fox", limit: 50, bm25: BM25Parameters(k1: 2, b: 0.3)), Self.reference(docs, "brown fox", k1: 2, b: 0.3), "k1 2, b 0.3")
            let all = try c.search(text: "search", limit: 50)
            #expect(try c.search(text: "search", limit: 2, offset: 1).map(\.score) == Array(all.map(\.score)[1..<3]))  // ties may swap ids
            let filtered = try c.search(text: "search", limit: 50, filter: .must(.hasID([.int(6), .int(1)])))
            #expect(Set(filtered.map(\.id)) == [.int(6), .int(1)])
            db.close()
        }
        let db = try Database.open(at: dir.path, configuration: config)
        let c = try db.collection("t")
        for q in queries { expectMatches(try c.search(text: q, limit: 50), Self.reference(docs, q), "reopened, \(q)") }
        db.close()
    }

    @Test func stopWordsAreLeftOut() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.path)
        defer { db.close() }
        let c = try db.createCollection("s", dimension: 2, metric: .euclidean, index: IndexConfiguration(stopWords: Tokenizer.englishStopWords))
        try c.upsert([
            Record(id: .int(1), vector: [1, 0], metadata: ["title": "The Cat"], document: "the cat"),
            Record(id: .int(2), vector: [0, 1], metadata: ["title": "a dog"], document: "a dog"),
        ])
        #expect(try c.search(text: "the").isEmpty)
        #expect(try c.search(text: "the cat").map(\.id) == [.int(1)])
        // Text conditions use the collection's tokenizer, row by row and through a text index alike.
        let f = Filter.must(.text("title", "the cat"))
        #expect(try c.count(filter: f) == 1)
        try c.createPayloadIndex("title", type: .text)
        try c.flush()
        #expect(try c.readView().segments.allSatisfy { $0.payload?.fields["title"] != nil })
        #expect(try c.count(filter: f) == 1)
        #expect(try c.search(text: "the cat").map(\.id) == [.int(1)])
    }

    /// RRF on fixed rankings, computed by hand: 1/(k + rank) summed over the lists.
    @Test func reciprocalRankFusionEqualsTheHandComputation() {
        let a: [RecordID] = [.int(1), .int(2), .int(3)]
        let b: [RecordID] = [.int(3), .int(1), .int(4)]
        let fused = Fusion.reciprocalRank([a, b], k: 60)
        let expected: [(RecordID, Double)] = [
            (.int(1), 1.0 / 61 + 1.0 / 62),
            (.int(3), 1.0 / 63 + 1.0 / 61),
            (.int(2), 1.0 / 62),
            (.int(4), 1.0 / 63),
        ]
        #expect(fused.map(\.id) == expected.map(\.0))
        for (f, e) in zip(fused, expected) { #expect(abs(f.score - e.1) < 1e-12) }
    }

    @Test func hybridSearchFusesBothSidesAndExplainsEachHit() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.path)
        defer { db.close() }
        let c = try db.createCollection("h", dimension: 2, metric: .euclidean)
        try c.upsert(Self.corpus.enumerated().map { Record(id: .int(UInt64($0.offset)), vector: [Float($0.offset), 0], metadata: ["i": .int(Int64($0.offset))], document: $0.element) })
        let q: [Float] = [0, 0]
        let vector = try c.search(q, limit: 50)
        let text = try c.search(text: "brown fox", limit: 50)
        let hits = try c.hybridSearch(vector: q, text: "brown fox", limit: 5, candidates: 50)
        let expected = Fusion.reciprocalRank([vector.map(\.id), text.map(\.id)], k: 60).prefix(5)
        #expect(hits.map(\.id) == expected.map(\.id))
        for (h, e) in zip(hits, expected) { #expect(abs(Double(h.score) - e.score) < 1e-6) }
        let top = try #require(hits.first?.explanation)
        #expect(top.vectorRank != nil && top.textRank != nil)  // record 0: nearest and a brown fox
        // Weighted fusion with alpha 1 is the vector ranking; with alpha 0 the text ranking first.
        #expect(try c.hybridSearch(vector: q, text: "brown fox", limit: 3, fusion: .weighted(alpha: 1)).map(\.id) == Array(vector.prefix(3).map(\.id)))
        #expect(try c.hybridSearch(vector: q, text: "brown fox", limit: 3, fusion: .weighted(alpha: 0)).map(\.id) == Array(text.prefix(3).map(\.id)))
        // Filters apply to both sides.
        let f = Filter.must(.range("i", gte: 4))
        #expect(try c.hybridSearch(vector: q, text: "brown fox", limit: 10, filter: f, include: [.metadata]).allSatisfy { ($0.metadata?["i"]?.intValue ?? 0) >= 4 })
        #expect(throws: SextantError.self) { try c.hybridSearch(vector: q, text: "x", fusion: .weighted(alpha: 2)) }
    }

    @Test func payloadIndexesPersistAndADamagedIndexFileIsDetectedAndRebuilt() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        do {
            let db = try Database.open(at: dir.path)
            let c = try db.createCollection("p", dimension: 2, metric: .euclidean)
            try c.upsert((0..<50).map { Record(id: .int(UInt64($0)), vector: [Float($0), 0], metadata: ["k": .string($0 % 2 == 0 ? "even" : "odd")], document: "word\($0 % 3)") })
            try c.flush()
            try c.createPayloadIndex("k", type: .keyword)
            #expect(throws: SextantError.self) { try c.createPayloadIndex("k", type: .integer) }
            #expect(throws: SextantError.self) { try c.createPayloadIndex("a..b", type: .integer) }
            #expect(try c.count(filter: .must(.match("k", "even"))) == 25)
            db.close()
        }
        let db = try Database.open(at: dir.path)
        let c = try db.collection("p")
        #expect(c.payloadIndexes == [PayloadIndexSpec(key: "k", type: .keyword)])
        #expect(try c.readView().segments.allSatisfy { $0.payload?.fields["k"] != nil })
        #expect(try c.count(filter: .must(.match("k", "even"))) == 25)
        db.close()
        // Flip a byte of the index file: verify reports it; queries stay correct and the file is rebuilt.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/collections/0000000000000001").filter { $0.hasSuffix(".pidx") }
        #expect(files.count == 1)
        let path = dir.path + "/collections/0000000000000001/" + files[0]
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count - 10] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        #expect(try Database.verify(at: dir.path).problems.contains { $0.contains(".pidx") })
        let db2 = try Database.open(at: dir.path)
        defer { db2.close() }
        let c2 = try db2.collection("p")
        #expect(try c2.count(filter: .must(.match("k", "even"))) == 25)
        try c2.waitForIndexing()
        #expect(try c2.readView().segments.allSatisfy { $0.payload?.fields["k"] != nil })
        #expect(try c2.search(text: "word1", limit: 100).count == 17)
        db2.close()
        #expect(try Database.verify(at: dir.path).isClean)
    }
}
