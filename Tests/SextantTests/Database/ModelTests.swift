// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Random sequences of operations checked against a plain dictionary after every step that matters.
@Suite struct ModelTests {
    @Test(arguments: 0..<6)
    func randomOperationsMatchADictionaryModel(seed: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var rng = RepeatableRandomNumberGenerator(seed: UInt64(seed))
        var config = Configuration()
        config.backgroundWork = seed % 2 == 0
        config.memtableBytes = 5 * 4 * Int.random(in: 20...120, using: &rng)
        config.maxSegments = 3
        var db = try Database.open(at: dir.path, configuration: config)
        var c = try db.createCollection("m", dimension: 5, metric: .euclidean)
        var model: [RecordID: Record] = [:]
        func randomID() -> RecordID {
            Bool.random(using: &rng) ? .int(UInt64.random(in: 0..<300, using: &rng)) : .string("id-\(Int.random(in: 0..<300, using: &rng))")
        }
        for step in 0..<400 {
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<55:
                let batch = (0..<Int.random(in: 1...12, using: &rng)).map { _ -> Record in
                    let id = randomID()
                    return Record(
                        id: id, vector: (0..<5).map { _ in Float.random(in: -1...1, using: &rng) },
                        metadata: Bool.random(using: &rng) ? ["step": .int(Int64(step))] : nil,
                        document: Bool.random(using: &rng) ? "s\(step)" : nil)
                }
                try c.upsert(batch)
                for r in batch { model[r.id] = r }  // in order: the last occurrence wins
            case 55..<80:
                let ids = (0..<Int.random(in: 1...6, using: &rng)).map { _ in randomID() }
                let expected = Set(ids).filter { model[$0] != nil }.count
                #expect(try c.delete(ids) == expected)
                for id in ids { model[id] = nil }
            case 80..<88: try c.flush()
            case 88..<93: try c.compact()
            case 93..<97:
                db.close()
                db = try Database.open(at: dir.path, configuration: config)
                c = try db.collection("m")
            default:
                // Full check.
                try check(c, model, &rng)
            }
            #expect(try c.count() == model.count, "step \(step)")
        }
        try check(c, model, &rng)
        db.close()
    }

    func check(_ c: VectorCollection, _ model: [RecordID: Record], _ rng: inout RepeatableRandomNumberGenerator) throws {
        // get
        let ids = Array(model.keys)
        let got = try c.get(ids)
        #expect(got.count == ids.count)
        for r in got {
            let m = model[r.id]!
            #expect(r.vector == m.vector && r.metadata == m.metadata && r.document == m.document)
        }
        // scroll: every live record once, in id order
        var seen: [RecordID] = []
        var after: RecordID? = nil
        repeat {
            let page = try c.scroll(after: after, limit: Int.random(in: 1...50, using: &rng))
            seen += page.records.map(\.id)
            after = page.nextAfter
        } while after != nil
        #expect(seen == model.keys.sorted())
        // search: exact top-k equals the brute force over the model
        let q = (0..<5).map { _ in Float.random(in: -1...1, using: &rng) }
        let hits = try c.search(q, limit: 7)
        var truth: [RecordID: Double] = [:]
        for (id, r) in model { truth[id] = bruteForceScore(.euclidean, q, r.vector) }
        let oracle = truth.sorted { $0.value < $1.value }.prefix(7).map { ($0.key, $0.value) }
        #expect(topKMatchesOracle(hits, oracle: Array(oracle), truth: truth, metric: .euclidean) == nil)
    }

    @Test func compactionFreesDisk() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.backgroundWork = false
        let db = try Database.open(at: dir.path, configuration: config)
        let c = try db.createCollection("c", dimension: 64, metric: .dot)
        let vectors = randomVectors(4000, dimension: 64, seed: 8)
        try c.upsert(vectors.enumerated().map { Record(id: .int(UInt64($0.offset)), vector: $0.element) })
        try c.flush()
        let before = try c.info().bytesOnDisk
        try c.delete((0..<3000).map { .int(UInt64($0)) })
        try c.compact()
        let after = try c.info()
        #expect(after.count == 1000)
        #expect(after.segments.map(\.rows) == [1000])
        #expect(after.bytesOnDisk < before / 2, "\(before) → \(after.bytesOnDisk)")
        db.close()
    }
}

@Suite struct WALRecordTests {
    @Test func encodeDecodeRoundTripsRandomBatches() throws {
        var rng = RepeatableRandomNumberGenerator(seed: 77)
        for _ in 0..<200 {
            let mutations: [Mutation] = (0..<Int.random(in: 0...20, using: &rng)).map { i in
                let id: RecordID = Bool.random(using: &rng) ? .int(rng.next()) : .string(String(repeating: "é", count: Int.random(in: 1...40, using: &rng)))
                if Bool.random(using: &rng) { return .delete(id) }
                let dim = Int.random(in: 1...50, using: &rng)
                let v = (0..<dim).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng) & 0xBF7F_FFFF) }
                return .upsert(id, vector: v, metadata: Array("{\"i\":\(i)}".utf8), document: Bool.random(using: &rng) ? "doc" : nil)
            }
            var w = ByteWriter()
            WALRecord.encodeBatch(mutations, seq: 9, syncedSeq: 8, into: &w)
            let decoded = try w.bytes.withBytes { (b) throws(SextantError) in
                try WALRecord.decodeBatch(UnsafeRawBufferPointer(rebasing: b[WALRecord.headerSize...]), what: "test")
            }
            #expect(decoded.count == mutations.count)
            for (a, b) in zip(decoded, mutations) {
                #expect(a.kind == b.kind && a.id == b.id && a.key == b.key && a.metadata == b.metadata && a.document == b.document)
                #expect(a.vector.map(\.bitPattern) == b.vector.map(\.bitPattern))
            }
        }
    }
}
