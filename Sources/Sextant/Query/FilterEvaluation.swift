// Sextant — an embedded vector database. Licensed under Apache-2.0.

import OrderedCollections
import Synchronization

/// What the planner chose for one source of a read view (a sealed segment or an in-memory table).
public struct PlanStep: Sendable, Hashable, CustomStringConvertible {
    public enum Source: Sendable, Hashable {
        case segment(UInt64)
        case memtable
    }
    public enum Strategy: Sendable, Hashable {
        /// HNSW traversal with this beam width; rows outside the candidates are walked through, never returned.
        case graph(ef: Int)
        /// Distances to every candidate row.
        case exact
        /// No row qualifies.
        case skip
    }
    public var source: Source
    /// Rows in the source, deleted ones included.
    public var rows: Int
    /// Live rows that pass the filter (all live rows without one).
    public var candidates: Int
    public var strategy: Strategy

    public var description: String {
        let name: String
        switch source {
        case .segment(let id): name = "segment \(hex16(id))"
        case .memtable: name = "memtable"
        }
        let how: String
        switch strategy {
        case .graph(let ef): how = "graph (ef \(ef))"
        case .exact: how = "exact scan"
        case .skip: how = "skipped"
        }
        return "\(name): \(rows) rows, \(candidates) candidates → \(how)"
    }
}

/// The rows of a read view that are live and pass a filter: one bitmap per segment and per memtable, in
/// the view's order.
package struct FilterMasks: Sendable {
    package var segments: [Bitmap]
    package var memtables: [Bitmap]
    package var total: Int { segments.reduce(0) { $0 + $1.setCount } + memtables.reduce(0) { $0 + $1.setCount } }
}

extension VectorCollection {
    /// Evaluates `filter` over every live row of `view`: conditions a segment's payload index answers
    /// exactly are answered from it; the rest read the metadata of the rows still in question.
    package func masks(_ filter: CompiledFilter, _ view: ReadView) throws(SextantError) -> FilterMasks {
        var segments: [Bitmap] = []
        segments.reserveCapacity(view.segments.count)
        for sealed in view.segments {
            let segment = sealed.segment
            var payload = sealed.payload
            if let reader = payload {
                do { try reader.verify() } catch {
                    discardPayloadIndex(of: segment.id)
                    payload = nil
                }
            }
            var evaluator = FilterEvaluator(
                rows: segment.rowCount, index: payload, readsMetadata: filter.readsMetadata,
                id: { (row) throws(SextantError) in try segment.recordID(row) },
                metadata: { (row) throws(SextantError) in
                    let bytes = try segment.metadata(row)
                    if bytes.isEmpty { return nil }
                    do throws(SextantError) { return try JSONParser.parse(bytes) } catch {
                        throw SextantError(.corrupt, "\(segment.path): metadata of row \(row) is not valid JSON: \(error.message)")
                    }
                })
            let live = Bitmap.full(count: segment.rowCount).subtracting(sealed.deleted)
            segments.append(try evaluator.evaluate(filter.root, within: live))
        }
        var memtables: [Bitmap] = []
        for (table, count, deleted) in view.memtables {
            // Copies of the arrays (copy-on-write: no bytes move) so evaluation runs outside the lock.
            let (ids, metadata) = state.withLock { _ in (table.ids, table.metadata) }
            var evaluator = FilterEvaluator(
                rows: count, index: nil, readsMetadata: filter.readsMetadata,
                id: { row in ids[row] },
                metadata: { (row) throws(SextantError) in
                    if metadata[row].isEmpty { return nil }
                    return try metadata[row].withBytes { (b) throws(SextantError) in
                        do throws(SextantError) { return try JSONParser.parse(b) } catch {
                            throw SextantError(.corrupt, "memtable row \(row): stored metadata is not valid JSON: \(error.message)")
                        }
                    }
                })
            let live = Bitmap.full(count: count).subtracting(deleted)
            memtables.append(try evaluator.evaluate(filter.root, within: live))
        }
        return FilterMasks(segments: segments, memtables: memtables)
    }

    /// Whether segment row `row` passes (the row's deletion mark is not consulted).
    package func passes(_ filter: CompiledFilter, _ segment: Segment, _ row: Int) throws(SextantError) -> Bool {
        let id = try segment.recordID(row)
        guard filter.readsMetadata else { return filter.matches(id: id, metadata: nil) }
        let bytes = try segment.metadata(row)
        if bytes.isEmpty { return filter.matches(id: id, metadata: nil) }
        do {
            return filter.matches(id: id, metadata: try JSONParser.parse(bytes))
        } catch {
            throw SextantError(.corrupt, "\(segment.path): metadata of row \(row) is not valid JSON: \(error.message)")
        }
    }

    package func passes(_ filter: CompiledFilter, id: RecordID, metadataBytes: [UInt8], where place: String) throws(SextantError) -> Bool {
        guard filter.readsMetadata, !metadataBytes.isEmpty else { return filter.matches(id: id, metadata: nil) }
        let value = try metadataBytes.withBytes { (b) throws(SextantError) in
            do throws(SextantError) { return try JSONParser.parse(b) } catch {
                throw SextantError(.corrupt, "\(place): stored metadata is not valid JSON: \(error.message)")
            }
        }
        return filter.matches(id: id, metadata: value)
    }
}

/// Evaluates a filter tree over the rows of one source into a bitmap. Conditions the payload index answers
/// exactly become bitmaps first (cheap, and they shrink the candidates); the others are evaluated row by
/// row over the candidates left, each row's metadata parsed at most once.
struct FilterEvaluator {
    typealias Node = CompiledFilter.Node
    typealias Clause = CompiledFilter.Clause
    let rows: Int
    let index: PayloadIndexReader?
    let readsMetadata: Bool
    let id: (Int) throws(SextantError) -> RecordID
    let metadata: (Int) throws(SextantError) -> JSONValue?
    private var parsed: [Int: JSONValue] = [:]

    init(
        rows: Int, index: PayloadIndexReader?, readsMetadata: Bool, id: @escaping (Int) throws(SextantError) -> RecordID,
        metadata: @escaping (Int) throws(SextantError) -> JSONValue?
    ) {
        self.rows = rows
        self.index = index
        self.readsMetadata = readsMetadata
        self.id = id
        self.metadata = metadata
    }

    private mutating func value(_ row: Int) throws(SextantError) -> JSONValue {
        if let v = parsed[row] { return v }
        let v = readsMetadata ? (try metadata(row) ?? .object([:])) : .object([:])
        parsed[row] = v
        return v
    }

    private mutating func holds(_ n: Node, _ row: Int) throws(SextantError) -> Bool {
        CompiledFilter.eval(n, try id(row), try value(row))
    }

    /// The rows of `within` that satisfy `clause`.
    mutating func evaluate(_ clause: Clause, within: Bitmap) throws(SextantError) -> Bitmap {
        var r = within
        var perRow: [Node] = []
        for n in clause.must {
            if r.setCount == 0 { return r }
            if let b = try bitmap(n, within: r) { r = r.intersection(b) } else { perRow.append(n) }
        }
        var perRowNot: [Node] = []
        for n in clause.mustNot {
            if let b = try bitmap(n, within: r) { r = r.subtracting(b) } else { perRowNot.append(n) }
        }
        if !perRow.isEmpty || !perRowNot.isEmpty {
            r = try r.filter { (row) throws(SextantError) in
                for n in perRow where !(try holds(n, row)) { return false }
                for n in perRowNot where try holds(n, row) { return false }
                return true
            }
        }
        if !clause.should.isEmpty && r.setCount > 0 {
            var any = Bitmap(count: r.count)
            var rest: [Node] = []
            for n in clause.should {
                if let b = try bitmap(n, within: r) { any = any.union(b.intersection(r)) } else { rest.append(n) }
            }
            if !rest.isEmpty {
                let undecided = r.subtracting(any)
                any = any.union(try undecided.filter { (row) throws(SextantError) in
                    for n in rest where try holds(n, row) { return true }
                    return false
                })
            }
            r = any
        }
        if let (nodes, count) = clause.minShould, r.setCount > 0 {
            var known: [Bitmap?] = []
            for n in nodes { known.append(try bitmap(n, within: r)) }
            r = try r.filter { (row) throws(SextantError) in
                var hits = 0
                for (i, n) in nodes.enumerated() {
                    if let b = known[i] { if b.contains(row) { hits += 1 } } else if try holds(n, row) { hits += 1 }
                    if hits >= count { return true }
                }
                return hits >= count
            }
        }
        return r
    }

    /// The rows satisfying `n` among `within` (or a superset restricted to `within` by the caller), when
    /// it can be computed without reading rows one by one: from the index, or a nested clause.
    private mutating func bitmap(_ n: Node, within: Bitmap) throws(SextantError) -> Bitmap? {
        switch n {
        case .clause(let inner):
            return try evaluate(inner, within: within)
        case .match(let path, let match, let tokens, _):
            guard let index else { return nil }
            switch match {
            case .value(let v): return try lookup(index, path.text, [v])
            case .any(let values): return try lookup(index, path.text, values)
            case .text:
                guard !tokens.isEmpty, index.fields[path.text]?.type == "text", let p = index.postings(path.text) else { return nil }
                var r: Bitmap?
                for t in tokens {
                    var b = BitmapBuilder(count: rows)
                    if let i = p.find(t) { b.add(p.rows!, p.range(ofTermAt: i)) }
                    r = r.map { $0.intersection(b.bitmap) } ?? b.bitmap
                }
                return r
            case .except: return nil
            }
        case .range(let path, let bounds):
            guard let index, let type = index.fields[path.text]?.type else { return nil }
            guard bounds.isDatetime ? type == "datetime" : (type == "integer" || type == "float"), let col = index.numeric(path.text) else { return nil }
            var b = BitmapBuilder(count: rows)
            b.add(col.rows!, col.range(bounds))
            return b.bitmap
        default:
            return nil
        }
    }

    /// Rows having one of `values` at `key`, if the index of `key` covers every value's kind.
    private func lookup(_ index: PayloadIndexReader, _ key: String, _ values: [FilterValue]) throws(SextantError) -> Bitmap? {
        guard let type = index.fields[key]?.type else { return nil }
        var b = BitmapBuilder(count: rows)
        for v in values {
            switch (v, type) {
            case (.keyword(let s), "keyword"):
                if let p = index.postings(key), let i = p.find(s) { b.add(p.rows!, p.range(ofTermAt: i)) }
            case (.bool(let flag), "bool"):
                if let p = index.postings(key), let i = p.find(flag ? "true" : "false") { b.add(p.rows!, p.range(ofTermAt: i)) }
            case (.integer(let x), "integer"), (.integer(let x), "float"):
                guard let col = index.numeric(key) else { return nil }
                for j in col.range(RangeBounds(gte: .number(Double(x)), lte: .number(Double(x)))) where col.isInt![j] == 1 && col.ints![j] == x {
                    b.add(Int(col.rows![j]))
                }
            default:
                return nil
            }
        }
        return b.bitmap
    }
}

/// Sets bits straight into words (no per-bit bookkeeping); the population is counted once at the end.
struct BitmapBuilder {
    var words: [UInt64]
    let count: Int

    init(count: Int) {
        self.count = count
        words = [UInt64](repeating: 0, count: (count + 63) / 64)
    }

    @inline(__always)
    mutating func add(_ row: Int) {
        words[row >> 6] |= 1 << UInt64(row & 63)
    }

    /// Sets the rows `rows[range]`.
    mutating func add(_ rows: UnsafePointer<UInt32>, _ range: Range<Int>) {
        words.withUnsafeMutableBufferPointer { w in
            for j in range {
                let r = Int(rows[j])
                w[r >> 6] |= 1 << UInt64(r & 63)
            }
        }
    }

    var bitmap: Bitmap { Bitmap(words: words, count: count) }
}
