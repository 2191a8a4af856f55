// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Synchronization

/// BM25's parameters: `k1` saturates term frequency, `b` normalizes for document length.
public struct BM25Parameters: Sendable, Hashable {
    /// 0…1000; the usual values are 1.2–2. Larger values would let a score overflow.
    public var k1: Double
    /// 0…1.
    public var b: Double
    public init(k1: Double = 1.2, b: Double = 0.75) {
        self.k1 = k1
        self.b = b
    }

    package func validate() throws(SextantError) {
        guard (0...1000).contains(k1), (0...1).contains(b) else {
            throw SextantError(.invalidArgument, "BM25 needs 0 ≤ k1 ≤ 1000 and 0 ≤ b ≤ 1 (got k1 \(k1), b \(b))")
        }
    }
}

/// How a hybrid search combines its vector and text rankings.
public enum Fusion: Sendable, Hashable {
    /// Reciprocal rank fusion: a record scores Σ 1 / (k + rank) over the rankings it appears in (ranks
    /// from 1). Needs no score calibration. The usual k is 60.
    case reciprocalRank(k: Double)
    /// Weighted sum of scores min-max normalized per ranking to [0, 1] (distances inverted so 1 is best):
    /// `alpha · vector + (1 − alpha) · text`; a record absent from a ranking gets 0 there.
    case weighted(alpha: Double)

    /// Fuses rankings (best first) by reciprocal rank; returns (id, fused score), best first, ties by id.
    public static func reciprocalRank(_ rankings: [[RecordID]], k: Double = 60) -> [(id: RecordID, score: Double)] {
        var score: [RecordID: Double] = [:]
        for ranking in rankings {
            for (i, id) in ranking.enumerated() { score[id, default: 0] += 1 / (k + Double(i + 1)) }
        }
        return score.map { ($0.key, $0.value) }.sorted { $0.score > $1.score || ($0.score == $1.score && $0.id < $1.id) }
    }
}

/// Why a hybrid hit ranks where it does.
public struct HybridExplanation: Sendable, Hashable {
    /// The vector score (similarity or distance, as the metric gives) and 1-based rank, if the record was
    /// among the vector candidates.
    public var vectorScore: Float?
    public var vectorRank: Int?
    /// The BM25 score and 1-based rank, if the record was among the text candidates.
    public var textScore: Float?
    public var textRank: Int?
}

extension VectorCollection {
    /// Full-text search over the records' documents, ranked by BM25 (highest score first).
    ///
    /// Words come from the collection's ``Tokenizer`` (lowercased, split on anything but letters, marks and
    /// digits, stop words dropped); each distinct query word counts once. Statistics — the number of
    /// documents, their average length, each word's document frequency — are over every live record with
    /// a document in the collection, so scores do not depend on how records are split into segments:
    /// `idf = ln(1 + (N − df + 0.5) / (df + 0.5))`, `score = Σ idf · tf · (k1 + 1) / (tf + k1 · (1 − b + b · dl / avgdl))`.
    /// Records matching no query word are not returned; with a `filter`, only passing records are.
    /// - Throws: ``SextantError/Code/invalidArgument`` for a limit or offset out of range (`limit + offset`
    ///   at most ``Limits/maxSearchResults``), `k1` outside 0…1000 or `b` outside 0…1.
    public func search(
        text: String, limit: Int = 10, offset: Int = 0, filter: Filter? = nil, scoreThreshold: Float? = nil,
        include: Include = [], bm25: BM25Parameters = BM25Parameters()
    ) throws(SextantError) -> [SearchHit] {
        try Self.validateLimits(limit: limit, offset: offset, scoreThreshold: scoreThreshold)
        try bm25.validate()
        let (view, top) = try textTop(text, k: limit + offset, filter: filter, bm25: bm25)
        return try textHits(top, view: view, include: include, offset: offset, scoreThreshold: scoreThreshold)
    }

    /// The best `k` rows by BM25 as (view, top-k of negated scores).
    private func textTop(_ text: String, k: Int, filter: Filter?, bm25: BM25Parameters) throws(SextantError) -> (ReadView, TopK) {
        let compiled = try filter.flatMap { (f) throws(SextantError) in f.isEmpty ? nil : try CompiledFilter(f, tokenizer: index.tokenizer) }
        var view = try readView()
        for sealed in view.segments {
            guard let reader = sealed.payload else { continue }
            do { try reader.verify() } catch { discardPayloadIndex(of: sealed.segment.id) }
        }
        view = try readView()
        if view.segments.contains(where: { $0.payload == nil }) {
            // Segments from before index files existed, or whose file failed to load: index them now.
            try runOptimizerNow { () throws(SextantError) in try ensurePayloadIndexes() }
            view = try readView()
        }
        let masks = try compiled.map { (f) throws(SextantError) in try self.masks(f, view) }
        let terms = Array(Set(index.tokenizer.tokens(text))).sorted()
        // Memory follows the rows there are, not the k asked for.
        let rows = view.segments.reduce(0) { $0 + $1.segment.rowCount } + view.memtables.reduce(0) { $0 + $1.count }
        var top = TopK(k: max(1, min(k, rows)))
        if terms.isEmpty { return (view, top) }

        // Collection-wide statistics over live records.
        var documents = 0, totalLength = 0
        var df = [Int](repeating: 0, count: terms.count)
        var segmentPostings: [Postings] = []
        for sealed in view.segments {
            guard let reader = sealed.payload else {
                throw SextantError(.corrupt, "\(sealed.segment.path): its text index file is missing or damaged; open the database for writing to rebuild it")
            }
            try reader.verify()
            let p = reader.postings(PayloadIndexFile.documentsKey)!
            segmentPostings.append(p)
            var (n, length) = try reader.documentTotals(sealed.segment)
            try sealed.deleted.forEachSet { (row) throws(SextantError) in
                if try sealed.segment.document(row) != nil {
                    n -= 1
                    length -= Int(p.docLengths![row])
                }
            }
            documents += n
            totalLength += length
            for (t, term) in terms.enumerated() {
                guard let i = p.find(term) else { continue }
                let range = p.range(ofTermAt: i)
                if sealed.deleted.setCount == 0 {
                    df[t] += range.count
                } else {
                    for j in range where !sealed.deleted.contains(Int(p.rows![j])) { df[t] += 1 }
                }
            }
        }
        var memtableDocuments: [[String?]] = []
        for (table, count, deleted) in view.memtables {
            let docs = state.withLock { _ in table.documents }
            memtableDocuments.append(docs)
            table.textIndex.withIndex(upTo: count, documents: docs, tokenizer: index.tokenizer) { c in
                for row in 0..<count where c.hasDocument[row] && !deleted.contains(row) {
                    documents += 1
                    totalLength += Int(c.docLengths[row])
                }
                for (t, term) in terms.enumerated() {
                    for (row, _) in c.postings[term] ?? [] where Int(row) < count && !deleted.contains(Int(row)) { df[t] += 1 }
                }
            }
        }
        if documents == 0 { return (view, top) }
        let n = Double(documents)
        let averageLength = max(Double(totalLength) / n, 1e-9)
        let idf = df.map { log(1 + (n - Double($0) + 0.5) / (Double($0) + 0.5)) }
        let k1 = bm25.k1, b = bm25.b
        @inline(__always) func weight(_ t: Int, _ tf: UInt32, _ length: UInt32) -> Float {
            let f = Double(tf)
            return Float(idf[t] * f * (k1 + 1) / (f + k1 * (1 - b + b * Double(length) / averageLength)))
        }

        // Term-at-a-time accumulation per source.
        var dense: [Float] = []
        var touched: [UInt32] = []
        for (i, sealed) in view.segments.enumerated() {
            let p = segmentPostings[i]
            let mask = masks?.segments[i]
            let anyDeleted = sealed.deleted.setCount > 0
            // Scores accumulate in a dense array (reset through the list of rows touched), term at a time.
            if dense.count < sealed.segment.rowCount { dense = [Float](repeating: 0, count: sealed.segment.rowCount) }
            touched.removeAll(keepingCapacity: true)
            dense.withUnsafeMutableBufferPointer { acc in
                for (t, term) in terms.enumerated() {
                    guard let ti = p.find(term) else { continue }
                    let rows = p.rows!, tfs = p.tfs!, lengths = p.docLengths!
                    for j in p.range(ofTermAt: ti) {
                        let row = Int(rows[j])
                        if let mask { if !mask.contains(row) { continue } } else if anyDeleted && sealed.deleted.contains(row) { continue }
                        if acc[row] == 0 { touched.append(UInt32(row)) }
                        acc[row] += weight(t, tfs[j], lengths[row])
                    }
                }
                let tag = UInt64(i) << 40
                var threshold = top.threshold
                for r in touched {
                    let row = Int(r)
                    let key = -acc[row]
                    acc[row] = 0
                    if !(key > threshold) {
                        top.insert(key, tag | UInt64(row))
                        threshold = top.threshold
                    }
                }
            }
        }
        for (j, (table, count, deleted)) in view.memtables.enumerated() {
            let mask = masks?.memtables[j]
            let tag = UInt64(view.segments.count + j) << 40
            table.textIndex.withIndex(upTo: count, documents: memtableDocuments[j], tokenizer: index.tokenizer) { c in
                var scores: [Int: Float] = [:]
                for (t, term) in terms.enumerated() {
                    for (row32, tf) in c.postings[term] ?? [] {
                        let row = Int(row32)
                        if row >= count { break }
                        if let mask { if !mask.contains(row) { continue } } else if deleted.contains(row) { continue }
                        scores[row, default: 0] += weight(t, tf, c.docLengths[row])
                    }
                }
                for (row, s) in scores where !(-s > top.threshold) { top.insert(-s, tag | UInt64(row)) }
            }
        }
        return (view, top)
    }

    private func textHits(_ top: TopK, view: ReadView, include: Include, offset: Int, scoreThreshold: Float?) throws(SextantError) -> [SearchHit] {
        var sorted = Array(top.sorted().dropFirst(offset))
        if let t = scoreThreshold { sorted.removeAll { -$0.key < t } }
        let records = try materialize(sorted.map { view.location(of: $0.payload) }, include: include)
        return zip(sorted, records).map { s, r in
            SearchHit(id: r.id, score: -s.key, metadata: r.metadata, document: r.document, vector: r.vector)
        }
    }

    /// Vector and full-text search together: each ranks `candidates` records (both with the filter),
    /// and the rankings are fused (reciprocal rank fusion by default). Hits carry the fused score and a
    /// ``HybridExplanation`` with each side's score and rank.
    /// - Parameter candidates: how many records each side ranks, 1…``Limits/maxSearchWidth``; default
    ///   max(50, 4 × (limit + offset)), at most ``Limits/maxSearchWidth``.
    /// - Throws: ``SextantError/Code/invalidArgument`` for a limit, offset, ef or candidates out of range, a
    ///   negative or non-finite RRF constant, an alpha outside 0…1; the errors of the vector and text searches.
    public func hybridSearch(
        vector: [Float], text: String, limit: Int = 10, offset: Int = 0, filter: Filter? = nil,
        fusion: Fusion = .reciprocalRank(k: 60), include: Include = [], ef: Int? = nil, candidates: Int? = nil,
        bm25: BM25Parameters = BM25Parameters()
    ) throws(SextantError) -> [SearchHit] {
        switch fusion {
        case .reciprocalRank(let k):
            guard k >= 0, k.isFinite else { throw SextantError(.invalidArgument, "the RRF constant k must be a finite number ≥ 0, not \(k)") }
        case .weighted(let alpha):
            guard (0...1).contains(alpha) else { throw SextantError(.invalidArgument, "alpha must be between 0 and 1, not \(alpha)") }
        }
        try Self.validateLimits(limit: limit, offset: offset, ef: ef)
        try bm25.validate()
        if let candidates, !(1...Limits.maxSearchWidth).contains(candidates) {
            throw SextantError(.invalidArgument, "candidates must be between 1 and \(Limits.maxSearchWidth), not \(candidates)")
        }
        // limit + offset ≤ maxSearchResults ≤ maxSearchWidth, so the default still covers the page asked for.
        let depth = candidates ?? min(max(50, 4 * (limit + offset)), Limits.maxSearchWidth)
        let vectorHits = try search(vector, limit: depth, filter: filter, include: [], ef: ef.map { max($0, depth) })
        let textHits = try search(text: text, limit: depth, filter: filter, include: [], bm25: bm25)
        var explanation: [RecordID: HybridExplanation] = [:]
        for (i, h) in vectorHits.enumerated() {
            explanation[h.id, default: HybridExplanation()].vectorScore = h.score
            explanation[h.id, default: HybridExplanation()].vectorRank = i + 1
        }
        for (i, h) in textHits.enumerated() {
            explanation[h.id, default: HybridExplanation()].textScore = h.score
            explanation[h.id, default: HybridExplanation()].textRank = i + 1
        }
        var fused: [(id: RecordID, score: Double)]
        switch fusion {
        case .reciprocalRank(let k):
            fused = Fusion.reciprocalRank([vectorHits.map(\.id), textHits.map(\.id)], k: k)
        case .weighted(let alpha):
            // In Double, so a difference of Float scores cannot overflow. A non-finite score (a record stored
            // before the norm limit) counts as the best or worst end; NaN as the worst.
            func normalized(_ scores: [Float], higherIsBetter: Bool) -> [Double] {
                let finite = scores.filter(\.isFinite)
                let lo = Double(finite.min() ?? 0), hi = Double(finite.max() ?? 0)
                return scores.map { score in
                    let good: Double
                    if score.isNaN {
                        good = 0
                    } else if !score.isFinite {
                        good = (score > 0) == higherIsBetter ? 1 : 0
                    } else if hi == lo {
                        good = 1
                    } else {
                        good = higherIsBetter ? (Double(score) - lo) / (hi - lo) : (hi - Double(score)) / (hi - lo)
                    }
                    return good
                }
            }
            var score: [RecordID: Double] = [:]
            for (h, v) in zip(vectorHits, normalized(vectorHits.map(\.score), higherIsBetter: metric.higherIsBetter)) { score[h.id, default: 0] += alpha * v }
            for (h, v) in zip(textHits, normalized(textHits.map(\.score), higherIsBetter: true)) { score[h.id, default: 0] += (1 - alpha) * v }
            fused = score.map { ($0.key, $0.value) }.sorted { $0.score > $1.score || ($0.score == $1.score && $0.id < $1.id) }
        }
        let page = Array(fused.dropFirst(offset).prefix(limit))
        let records = include.isEmpty ? page.map { StoredRecord(id: $0.id) } : try get(page.map(\.id), include: include)
        let byID = Dictionary(records.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        return page.map { p in
            let r = byID[p.id]
            return SearchHit(id: p.id, score: Float(p.score), metadata: r?.metadata, document: r?.document, vector: r?.vector, explanation: explanation[p.id])
        }
    }
}

extension ReadView {
    /// The location of a top-k payload (source index << 40 | row).
    package func location(of payload: UInt64) -> VectorCollection.Location {
        let source = Int(payload >> 40)
        let row = Int(payload & 0xFF_FFFF_FFFF)
        return source < segments.count ? .segment(segments[source].segment, row) : .memtable(memtables[source - segments.count].table, row)
    }
}
