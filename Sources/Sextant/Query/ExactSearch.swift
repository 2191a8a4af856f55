// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels
import Dispatch
import Synchronization

extension VectorCollection {
    /// Returns the `limit` records nearest to `query`, best first, by exact (brute-force) search.
    ///
    /// Scores: cosine and dot are similarities (higher is better); euclidean and manhattan are distances
    /// (lower is better). Hits carry id and score, plus what `include` asks for.
    /// - Complexity: O(n · dimension) distance work over all live rows, plus O(n log limit).
    /// - Throws: ``SextantError/Code/dimensionMismatch``, ``SextantError/Code/invalidVector``. An empty
    ///   collection gives an empty result, which is not an error.
    public func search(_ query: [Float], limit: Int = 10, include: Include = []) throws(SextantError) -> [SearchHit] {
        try validateQuery(query, index: 0)
        guard limit > 0 else { throw SextantError(.invalidArgument, "limit must be positive, not \(limit)") }
        let view = try readView()
        let scanner = Scanner(metric: metric, dimension: dimension)
        let top = try query.withUnsafeBufferPointer { (q) throws(SextantError) in try scanner.scan(view, q.baseAddress!, limit: limit) }
        return try hits(top, view: view, query: query, include: include)
    }

    /// Searches many queries at once, spread over all cores. Results are in query order.
    public func search(batch queries: [[Float]], limit: Int = 10, include: Include = []) throws(SextantError) -> [[SearchHit]] {
        for (i, q) in queries.enumerated() { try validateQuery(q, index: i) }
        guard limit > 0 else { throw SextantError(.invalidArgument, "limit must be positive, not \(limit)") }
        let view = try readView()
        let scanner = Scanner(metric: metric, dimension: dimension)
        let results = Mutex([[SearchHit]?](repeating: nil, count: queries.count))
        let failure = Mutex<SextantError?>(nil)
        let next = Atomic<Int>(0)
        let threads = min(queries.count, configuration_searchThreads)
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= queries.count { return }
                do throws(SextantError) {
                    let top = try queries[i].withUnsafeBufferPointer { (q) throws(SextantError) in
                        try scanner.scan(view, q.baseAddress!, limit: limit)
                    }
                    let h = try hits(top, view: view, query: queries[i], include: include)
                    results.withLock { $0[i] = h }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                    return
                }
            }
        }
        if let e = failure.withLock({ $0 }) { throw e }
        return results.withLock { $0.map { $0 ?? [] } }
    }

    private var configuration_searchThreads: Int {
        let n = databaseConfiguration.searchThreads
        return n > 0 ? n : ProcessInfoCores.count
    }

    package func validateQuery(_ query: [Float], index: Int) throws(SextantError) {
        guard query.count == dimension else {
            throw SextantError(.dimensionMismatch, "query \(index): the vector has \(query.count) values; collection '\(name)' has dimension \(dimension)")
        }
        var allZero = true
        for (j, x) in query.enumerated() {
            if !x.isFinite { throw SextantError(.invalidVector, "query \(index): vector[\(j)] is \(x.isNaN ? "NaN" : "infinite")") }
            if x != 0 { allZero = false }
        }
        if allZero && metric == .cosine {
            throw SextantError(.invalidVector, "query \(index): a zero vector has no direction under the cosine metric")
        }
    }

    /// Turns top-k payloads into hits, reading payloads only for the final rows.
    private func hits(_ top: TopK, view: ReadView, query: [Float], include: Include) throws(SextantError) -> [SearchHit] {
        let sorted = top.sorted()
        let qInv = metric == .cosine ? inverseNorm(query) : 1
        var locations: [Location] = []
        locations.reserveCapacity(sorted.count)
        for (_, payload) in sorted {
            let source = Int(payload >> 40)
            let row = Int(payload & 0xFF_FFFF_FFFF)
            if source < view.segments.count {
                locations.append(.segment(view.segments[source].segment, row))
            } else {
                locations.append(.memtable(view.memtables[source - view.segments.count].table, row))
            }
        }
        let records = try materialize(locations, include: include.union(.init()))
        var out: [SearchHit] = []
        out.reserveCapacity(sorted.count)
        for (i, (key, _)) in sorted.enumerated() {
            let score: Float
            switch metric {
            case .cosine: score = -key * qInv
            case .dot: score = -key
            case .euclidean: score = max(0, key).squareRoot()
            case .manhattan: score = key
            }
            let r = records[i]
            out.append(SearchHit(id: r.id, score: score, metadata: r.metadata, document: r.document, vector: r.vector))
        }
        return out
    }
}

enum ProcessInfoCores {
    static let count: Int = {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }()
}

#if canImport(Glibc)
import Glibc
#endif

/// Exact scan of a read view with the best distance kernels for this CPU.
package struct Scanner: Sendable {
    let metric: Metric
    let dimension: Int
    private static let block = 1024

    package init(metric: Metric, dimension: Int) {
        self.metric = metric
        self.dimension = dimension
    }

    /// Scans every live row of `view`. Payload = source index << 40 | row.
    package func scan(_ view: ReadView, _ q: UnsafePointer<Float>, limit: Int) throws(SextantError) -> TopK {
        var top = TopK(k: limit)
        var buffer = [Float](repeating: 0, count: Self.block)
        for (i, (segment, deleted)) in view.segments.enumerated() {
            let base = try segment.vectors()
            let norms = metric == .cosine ? try segment.inverseNorms() : nil
            scanRows(q, base, norms, segment.rowCount, deleted, UInt64(i) << 40, &top, &buffer)
        }
        for (j, (table, count, deleted)) in view.memtables.enumerated() {
            scanRows(q, table.vectors, UnsafePointer(table.inverseNorms), count, deleted, UInt64(view.segments.count + j) << 40, &top, &buffer)
        }
        return top
    }

    private func scanRows(
        _ q: UnsafePointer<Float>, _ base: UnsafePointer<Float>, _ norms: UnsafePointer<Float>?, _ count: Int,
        _ deleted: Bitmap, _ tag: UInt64, _ top: inout TopK, _ buffer: inout [Float]
    ) {
        let kernels = sx_kernels_best()!.pointee
        let d = dimension
        let anyDeleted = deleted.setCount > 0
        buffer.withUnsafeMutableBufferPointer { out in
            var start = 0
            while start < count {
                let n = min(Self.block, count - start)
                let rows = base + start * d
                switch metric {
                case .cosine, .dot: kernels.dot_batch(q, rows, n, d, d, out.baseAddress!)
                case .euclidean: kernels.l2sq_batch(q, rows, n, d, d, out.baseAddress!)
                case .manhattan: kernels.l1_batch(q, rows, n, d, d, out.baseAddress!)
                }
                // Convert to "lower is better" keys.
                switch metric {
                case .cosine:
                    let nr = norms! + start
                    for i in 0..<n { out[i] = -(out[i] * nr[i]) }
                case .dot:
                    for i in 0..<n { out[i] = -out[i] }
                case .euclidean, .manhattan:
                    break
                }
                var threshold = top.threshold
                for i in 0..<n where out[i] < threshold {
                    let row = start + i
                    if anyDeleted && deleted.contains(row) { continue }
                    top.insert(out[i], tag | UInt64(row))
                    threshold = top.threshold
                }
                start += n
            }
        }
    }
}
