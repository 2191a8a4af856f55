// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels
import Dispatch
import Synchronization

/// How a search runs.
public struct SearchOptions: Sendable, Hashable {
    /// Beam width on graph segments (aka `ef`); nil means ``IndexConfiguration/defaultSearchWidth``. The
    /// effective width is at least `limit`. Larger is slower and finds more of the true nearest neighbours.
    /// At most ``Limits/maxSearchWidth``.
    public var searchWidth: Int?
    /// Scan every row instead of using graphs: exact results, O(n) time.
    public var exact: Bool
    /// With int8 quantization: the beam on the codes is `searchWidth × oversampling` wide (see
    /// ``IndexConfiguration/rescoreOversampling``).
    public var oversampling: Int

    public init(searchWidth: Int? = nil, exact: Bool = false, oversampling: Int = 1) {
        self.searchWidth = searchWidth
        self.exact = exact
        self.oversampling = oversampling
    }
}

extension VectorCollection {
    /// Returns the `limit` records nearest to `query`, best first.
    ///
    /// Segments with a graph are searched approximately (HNSW, beam width `ef`); segments without one, and
    /// the in-memory table, are scanned exactly; all of it merges into one top-k. A segment with few live
    /// rows left is scanned exactly even if it has a graph, so a search asking for k results returns k
    /// whenever k records exist. Scores: cosine and dot are similarities (higher is better); euclidean and
    /// manhattan are distances (lower is better). Hits carry id and score, plus what `include` asks for.
    ///
    /// With a `filter`, only records passing it are candidates, and the planner picks per segment between
    /// the graph (with the filter as an allow-set, the beam widened as fewer rows pass) and an exact scan of
    /// the passing rows (when few pass), so the result holds the true top-k among passing records as long
    /// as k of them exist — never fewer because of filtering.
    /// - Parameters:
    ///   - limit: how many hits, at least 1; `limit + offset` is at most ``Limits/maxSearchResults``. More
    ///     than the collection holds is not an error (memory follows the records, not the limit).
    ///   - offset: skip this many of the best hits first (for paging).
    ///   - scoreThreshold: keep hits scoring at least this (cosine, dot) or at most this (euclidean, manhattan).
    ///   - ef: the graph beam width, 1…``Limits/maxSearchWidth``.
    /// - Complexity: O(ef · M · log n) distance evaluations per graph segment; O(rows · dimension) per
    ///   exact segment; plus evaluating the filter.
    /// - Throws: ``SextantError/Code/dimensionMismatch``, ``SextantError/Code/invalidVector`` (NaN, an
    ///   infinity, a norm over ``Limits/maxVectorNorm``, a zero or near-zero vector under cosine),
    ///   ``SextantError/Code/invalidArgument`` for a malformed filter or a limit, offset or ef out of range.
    ///   An empty collection gives an empty result, which is not an error.
    public func search(
        _ query: [Float], limit: Int = 10, offset: Int = 0, filter: Filter? = nil, scoreThreshold: Float? = nil,
        include: Include = [], ef: Int? = nil, exact: Bool = false
    ) throws(SextantError) -> [SearchHit] {
        try searchExplained(query, limit: limit, offset: offset, filter: filter, scoreThreshold: scoreThreshold, include: include, ef: ef, exact: exact).hits
    }

    /// ``search(_:limit:offset:filter:scoreThreshold:include:ef:exact:)``, also returning the plan chosen
    /// for each segment and memtable.
    public func searchExplained(
        _ query: [Float], limit: Int = 10, offset: Int = 0, filter: Filter? = nil, scoreThreshold: Float? = nil,
        include: Include = [], ef: Int? = nil, exact: Bool = false
    ) throws(SextantError) -> (hits: [SearchHit], plan: [PlanStep]) {
        try validateQuery(query, index: 0)
        try Self.validateLimits(limit: limit, offset: offset, ef: ef, scoreThreshold: scoreThreshold)
        let compiled = try filter.flatMap { (f) throws(SextantError) in f.isEmpty ? nil : try CompiledFilter(f, tokenizer: index.tokenizer) }
        let view = try readView()
        let masks = try compiled.map { (f) throws(SextantError) in try self.masks(f, view) }
        let scanner = makeScanner()
        let options = SearchOptions(searchWidth: ef, exact: exact, oversampling: index.rescoreOversampling)
        var plan: [PlanStep] = []
        let top = try query.withUnsafeBufferPointer { (q) throws(SextantError) in
            try scanner.scan(view, q.baseAddress!, qInverseNorm: inverseNorm(query), limit: limit + offset, options: options, masks: masks, plan: &plan)
        }
        return (try hits(top, view: view, include: include, offset: offset, scoreThreshold: scoreThreshold), plan)
    }

    /// Searches many queries at once, spread over all cores. Results are in query order.
    public func search(
        batch queries: [[Float]], limit: Int = 10, offset: Int = 0, filter: Filter? = nil, scoreThreshold: Float? = nil,
        include: Include = [], ef: Int? = nil, exact: Bool = false
    ) throws(SextantError) -> [[SearchHit]] {
        for (i, q) in queries.enumerated() { try validateQuery(q, index: i) }
        try Self.validateLimits(limit: limit, offset: offset, ef: ef, scoreThreshold: scoreThreshold)
        let compiled = try filter.flatMap { (f) throws(SextantError) in f.isEmpty ? nil : try CompiledFilter(f, tokenizer: index.tokenizer) }
        let view = try readView()
        let masks = try compiled.map { (f) throws(SextantError) in try self.masks(f, view) }
        let scanner = makeScanner()
        let options = SearchOptions(searchWidth: ef, exact: exact, oversampling: index.rescoreOversampling)
        let results = Locked([[SearchHit]?](repeating: nil, count: queries.count))
        let failure = Locked<SextantError?>(nil)
        let next = Atomic<Int>(0)
        let threads = min(queries.count, configuration_searchThreads)
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= queries.count { return }
                do throws(SextantError) {
                    let top = try queries[i].withUnsafeBufferPointer { (q) throws(SextantError) in
                        try scanner.scan(view, q.baseAddress!, qInverseNorm: inverseNorm(queries[i]), limit: limit + offset, options: options, masks: masks)
                    }
                    let h = try hits(top, view: view, include: include, offset: offset, scoreThreshold: scoreThreshold)
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

    private func makeScanner() -> Scanner {
        Scanner(metric: metric, dimension: dimension) { [weak self] segmentID, error in
            self?.discardGraph(of: segmentID, because: error)
        }
    }

    /// The bounds every search shares: 1 ≤ limit, 0 ≤ offset, limit + offset ≤ ``Limits/maxSearchResults``
    /// (checked without overflowing), 1 ≤ ef ≤ ``Limits/maxSearchWidth``, a threshold that is a number.
    package static func validateLimits(limit: Int, offset: Int, ef: Int? = nil, scoreThreshold: Float? = nil) throws(SextantError) {
        guard limit > 0 else { throw SextantError(.invalidArgument, "limit must be positive, not \(limit)") }
        guard offset >= 0 else { throw SextantError(.invalidArgument, "offset must not be negative, not \(offset)") }
        guard limit <= Limits.maxSearchResults, offset <= Limits.maxSearchResults - limit else {
            throw SextantError(
                .invalidArgument,
                "limit + offset must be at most \(Limits.maxSearchResults) results per search, not \(limit) + \(offset)"
                    + " (page through more with a filter, or list records with scroll)")
        }
        if let ef, !(1...Limits.maxSearchWidth).contains(ef) {
            throw SextantError(.invalidArgument, "ef (the search beam width) must be between 1 and \(Limits.maxSearchWidth), not \(ef)")
        }
        if let scoreThreshold, scoreThreshold.isNaN {
            throw SextantError(.invalidArgument, "the score threshold must be a number, not NaN")
        }
    }

    private var configuration_searchThreads: Int {
        let n = databaseConfiguration.searchThreads
        return n > 0 ? n : AvailableCPUs.count
    }

    /// A query vector obeys the rules of stored vectors (see ``validate(_:vector:index:)``): finite values
    /// and a norm within ``Limits/maxVectorNorm`` (at least ``Limits/minCosineVectorNorm`` under cosine),
    /// so its distance to any stored vector is finite.
    package func validateQuery(_ query: [Float], index: Int) throws(SextantError) {
        guard query.count == dimension else {
            throw SextantError(.dimensionMismatch, "query \(index): the vector has \(query.count) values; collection '\(name)' has dimension \(dimension)")
        }
        let sumsq = query.withUnsafeBufferPointer { sx_sumsq_f64($0.baseAddress!, $0.count) }
        if sumsq > 0 && sumsq <= Self.maxSumOfSquares && (metric != .cosine || sumsq >= Self.minCosineSumOfSquares) { return }
        for (j, x) in query.enumerated() where !x.isFinite {
            throw SextantError(.invalidVector, "query \(index): vector[\(j)] is \(x.isNaN ? "NaN" : "infinite")")
        }
        if let problem = Limits.normProblem(sumOfSquares: sumsq, metric: metric) {
            throw SextantError(.invalidVector, "query \(index): the vector is refused: \(problem)")
        }
    }

    /// Turns top-k payloads into hits, reading payloads only for the final rows.
    private func hits(_ top: TopK, view: ReadView, include: Include, offset: Int, scoreThreshold: Float?) throws(SextantError) -> [SearchHit] {
        var sorted = Array(top.sorted().dropFirst(offset))
        if let t = scoreThreshold {
            let higher = metric.higherIsBetter
            sorted.removeAll { higher ? Scanner.score($0.key, metric: metric) < t : Scanner.score($0.key, metric: metric) > t }
        }
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
        let records = try materialize(locations, include: include)
        var out: [SearchHit] = []
        out.reserveCapacity(sorted.count)
        for (i, (key, _)) in sorted.enumerated() {
            let r = records[i]
            out.append(SearchHit(id: r.id, score: Scanner.score(key, metric: metric), metadata: r.metadata, document: r.document, vector: r.vector))
        }
        return out
    }
}


#if canImport(Glibc)
import Glibc
#endif

/// Searches a read view: graph segments by HNSW, the rest by exact scan with the best distance kernels
/// for this CPU, all into one top-k of "lower is better" keys (the keys of ``DistanceSpace``).
package struct Scanner: Sendable {
    let metric: Metric
    let dimension: Int
    /// Called when a graph fails its checksum; that segment is then scanned exactly instead.
    let onDamagedGraph: @Sendable (UInt64, SextantError) -> Void
    private static let block = 1024

    package init(metric: Metric, dimension: Int, onDamagedGraph: @escaping @Sendable (UInt64, SextantError) -> Void = { _, _ in }) {
        self.metric = metric
        self.dimension = dimension
        self.onDamagedGraph = onDamagedGraph
    }

    /// The public score for a key: similarity for cosine and dot, distance for euclidean and manhattan.
    @inline(__always)
    package static func score(_ key: Float, metric: Metric) -> Float {
        switch metric {
        case .cosine: return 1 - key
        case .dot: return -key
        case .euclidean: return max(0, key).squareRoot()
        case .manhattan: return key
        }
    }

    /// Payload = source index << 40 | row. With `masks`, only the rows they hold are candidates (the masks
    /// exclude deleted rows themselves); `plan`, when given, receives the strategy chosen per source.
    package func scan(
        _ view: ReadView, _ q: UnsafePointer<Float>, qInverseNorm: Float, limit: Int, options: SearchOptions,
        masks: FilterMasks? = nil, plan: UnsafeMutablePointer<[PlanStep]>? = nil
    ) throws(SextantError) -> TopK {
        // Memory follows the rows there are, not the limit asked for (which may be far larger).
        let rows = view.segments.reduce(0) { $0 + $1.segment.rowCount } + view.memtables.reduce(0) { $0 + $1.count }
        let k = max(1, min(limit, rows))
        var top = TopK(k: k)
        var buffer = [Float](repeating: 0, count: Self.block)
        let ef = max(options.searchWidth ?? IndexConfiguration.defaultSearchWidth, k)
        for (i, sealed) in view.segments.enumerated() {
            let segment = sealed.segment, deleted = sealed.deleted, graph = sealed.graph, graphFile = sealed.graphFile, codes = sealed.codes
            let base = try segment.vectors()
            let norms = try segment.inverseNorms()
            let tag = UInt64(i) << 40
            let mask = masks?.segments[i]
            let live = mask?.setCount ?? (segment.rowCount - deleted.setCount)
            if live == 0 {
                plan?.pointee.append(PlanStep(source: .segment(segment.id), rows: segment.rowCount, candidates: 0, strategy: .skip))
                continue
            }
            // The planner. A graph pays off while enough rows are candidates: traversal costs about
            // `c · ef / selectivity` distance evaluations (disallowed nodes are walked through, not
            // returned), an exact scan one per candidate, so below √(c · ef · rows) candidates the scan is
            // cheaper. c = 48 puts the switch where measurements on the real 20k × 384 set put it (about
            // 40 % passing at ef 64; bench/run_query.sh). Deletions count the same way, so a segment with
            // few live rows left is scanned.
            let selectivity = Double(live) / Double(max(1, segment.rowCount))
            var usable = graph != nil && !options.exact && live >= 4 * ef
                && Double(live) * Double(live) >= Double(ef * 48) * Double(segment.rowCount)
                && selectivity >= 0.1
            if usable, let graphFile {
                do throws(SextantError) {
                    try graphFile.verify()
                    try codes?.verify()
                } catch {
                    onDamagedGraph(segment.id, error)
                    usable = false
                }
            }
            if usable, let graph {
                // With a filter the beam holds ef·√selectivity allowed rows. The walk goes on through
                // disallowed nodes until it holds them, so it covers about ef/√selectivity nodes: the effort
                // grows as fewer rows pass, and the region searched stays as large, recall-wise, as the
                // unfiltered search's (measured on the real 20k set at 50 % passing, ef 64: beam 46, recall
                // 0.989 against 0.990 unfiltered; beam 64 gave 0.994 at 0.56× the QPS).
                let width = mask != nil ? max(k, Int((Double(ef) * selectivity.squareRoot()).rounded(.up))) : ef
                plan?.pointee.append(PlanStep(source: .segment(segment.id), rows: segment.rowCount, candidates: live, strategy: .graph(ef: width)))
                let space = DistanceSpace(metric: metric, dimension: dimension, vectors: base, inverseNorms: norms)
                let allow: ((Int) -> Bool)?
                if let mask {
                    allow = { mask.contains($0) }
                } else if deleted.setCount > 0 {
                    allow = { !deleted.contains($0) }
                } else {
                    allow = nil
                }
                if let codes {
                    graph.searchQuantized(
                        q, qInverseNorm: qInverseNorm, ef: width, oversampling: options.oversampling, space: space, codes: codes,
                        allow: allow, into: &top, tag: tag)
                } else {
                    graph.search(q, qInverseNorm: qInverseNorm, ef: width, space: space, allow: allow, into: &top, tag: tag)
                }
            } else {
                plan?.pointee.append(PlanStep(source: .segment(segment.id), rows: segment.rowCount, candidates: live, strategy: .exact))
                if let mask {
                    scanAllowed(q, qInverseNorm, base, norms, mask, tag, &top, &buffer)
                } else {
                    scanRows(q, qInverseNorm, base, norms, segment.rowCount, deleted, tag, &top, &buffer)
                }
            }
        }
        for (j, (table, count, deleted)) in view.memtables.enumerated() {
            let tag = UInt64(view.segments.count + j) << 40
            if count == 0 { continue }
            if let mask = masks?.memtables[j] {
                plan?.pointee.append(PlanStep(source: .memtable, rows: count, candidates: mask.setCount, strategy: mask.setCount == 0 ? .skip : .exact))
                if mask.setCount > 0 { scanAllowed(q, qInverseNorm, table.vectors, UnsafePointer(table.inverseNorms), mask, tag, &top, &buffer) }
            } else {
                plan?.pointee.append(PlanStep(source: .memtable, rows: count, candidates: count - deleted.setCount, strategy: .exact))
                scanRows(q, qInverseNorm, table.vectors, UnsafePointer(table.inverseNorms), count, deleted, tag, &top, &buffer)
            }
        }
        return top
    }

    /// Exact distances to the rows set in `allowed`, gathered in blocks.
    private func scanAllowed(
        _ q: UnsafePointer<Float>, _ qInverseNorm: Float, _ base: UnsafePointer<Float>, _ norms: UnsafePointer<Float>,
        _ allowed: Bitmap, _ tag: UInt64, _ top: inout TopK, _ buffer: inout [Float]
    ) {
        let d = dimension
        var ids = [UInt32](repeating: 0, count: Self.block)
        var n = 0
        func drain(_ out: UnsafeMutableBufferPointer<Float>, _ idp: UnsafeMutableBufferPointer<UInt32>) {
            switch metric {
            case .cosine, .dot: sx_dot_gather(q, base, idp.baseAddress!, n, d, out.baseAddress!)
            case .euclidean: sx_l2sq_gather(q, base, idp.baseAddress!, n, d, out.baseAddress!)
            case .manhattan: sx_l1_gather(q, base, idp.baseAddress!, n, d, out.baseAddress!)
            }
            var threshold = top.threshold
            for i in 0..<n {
                let row = Int(idp[i])
                var key = out[i]
                switch metric {
                case .cosine: key = 1 - key * norms[row] * qInverseNorm
                case .dot: key = -key
                case .euclidean, .manhattan: break
                }
                // `!(key > threshold)`, not `key < threshold`: until the top-k is full the threshold is +inf,
                // and a key of +inf or NaN (a distance that overflowed, from a record stored before the
                // norm limit) must still get in; TopK orders those last, deterministically.
                if !(key > threshold) {
                    top.insert(key, tag | UInt64(row))
                    threshold = top.threshold
                }
            }
            n = 0
        }
        buffer.withUnsafeMutableBufferPointer { out in
            ids.withUnsafeMutableBufferPointer { idp in
                allowed.forEachSet { row in
                    idp[n] = UInt32(row)
                    n += 1
                    if n == Self.block { drain(out, idp) }
                }
                if n > 0 { drain(out, idp) }
            }
        }
    }

    private func scanRows(
        _ q: UnsafePointer<Float>, _ qInverseNorm: Float, _ base: UnsafePointer<Float>, _ norms: UnsafePointer<Float>, _ count: Int,
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
                // Convert to the keys of DistanceSpace.
                switch metric {
                case .cosine:
                    let nr = norms + start
                    for i in 0..<n { out[i] = 1 - out[i] * nr[i] * qInverseNorm }
                case .dot:
                    for i in 0..<n { out[i] = -out[i] }
                case .euclidean, .manhattan:
                    break
                }
                var threshold = top.threshold
                for i in 0..<n where !(out[i] > threshold) {  // see scanAllowed: +inf and NaN keys are kept
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
