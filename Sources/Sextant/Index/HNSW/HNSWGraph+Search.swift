// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels

#if canImport(Glibc)
import Glibc
#endif

/// Distances from one fixed query to graph nodes, as "lower is better" keys. Traversal is generic over it
/// (specialized per conformance, no existentials in the loop): Float32 vectors or int8 codes.
package protocol TraversalSpace {
    func distance(_ node: Int) -> Float
    func distances(_ ids: UnsafePointer<UInt32>, _ n: Int, _ out: UnsafeMutablePointer<Float>)
}

/// A query against the Float32 vectors.
package struct FloatQuery: TraversalSpace {
    let space: DistanceSpace
    let q: UnsafePointer<Float>
    let qInverseNorm: Float
    @inline(__always) package func distance(_ node: Int) -> Float { space.distance(q, qInverseNorm, node) }
    @inline(__always) package func distances(_ ids: UnsafePointer<UInt32>, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
        space.distances(q, qInverseNorm, ids, n, out)
    }
}

/// A query against int8 codes: the same keys as ``DistanceSpace``, approximately.
package struct Int8Query: TraversalSpace {
    let codes: UnsafePointer<Int8>
    let query: UnsafePointer<Int8>
    let dimension: Int
    let metric: Metric
    /// scale² (dot products of codes are in units of scale²).
    let scale2: Float
    let squaredNorms: UnsafePointer<Float>
    let qSquaredNorm: Float
    let scratch: UnsafeMutablePointer<Int32>

    @inline(__always) func key(_ dot: Int32, _ node: Int) -> Float {
        let d = Float(dot) * scale2
        switch metric {
        case .cosine: return 1 - d
        case .dot: return -d
        case .euclidean: return qSquaredNorm + squaredNorms[node] - 2 * d
        case .manhattan: return -d  // not offered for manhattan (rejected at create)
        }
    }

    @inline(__always) package func distance(_ node: Int) -> Float {
        var id = UInt32(node)
        sx_i8_dot_gather(query, codes, &id, 1, dimension, scratch)
        return key(scratch[0], node)
    }

    @inline(__always) package func distances(_ ids: UnsafePointer<UInt32>, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
        sx_i8_dot_gather(query, codes, ids, n, dimension, scratch)
        for i in 0..<n { out[i] = key(scratch[i], Int(ids[i])) }
    }
}

extension HNSWGraph {
    /// Greedy descent from `entry` through the layers above `target`, each time to the closest neighbour.
    @inline(__always)
    func descend<S: TraversalSpace>(
        _ query: S, from entry: Int, entryDistance: Float, toLevel target: Int, topLevel: Int,
        locks: StripedLocks?, ctx: SearchContext
    ) -> (Int, Float) {
        var cur = entry
        var curDist = entryDistance
        var level = topLevel
        while level > target {
            var changed = true
            while changed {
                changed = false
                let n = readLinks(cur, level: level, locks: locks, into: ctx.ids)
                query.distances(ctx.ids, n, ctx.distances)
                for i in 0..<n where ctx.distances[i] < curDist {
                    curDist = ctx.distances[i]
                    cur = Int(ctx.ids[i])
                    changed = true
                }
            }
            level -= 1
        }
        return (cur, curDist)
    }

    /// Copies node's links at `level` into `buffer` (under its lock while the graph is being built).
    @inline(__always)
    func readLinks(_ node: Int, level: Int, locks: StripedLocks?, into buffer: UnsafeMutablePointer<UInt32>) -> Int {
        let block = links(node, level: level)
        locks?.lock(node)
        let n = Int(block[0])
        buffer.update(from: block + 1, count: n)
        locks?.unlock(node)
        return n
    }

    /// Beam search on one layer (Algorithm 2 of the paper). On return `ctx.results` holds the best `ef`
    /// allowed nodes found (a max-heap). Nodes that are not allowed are still traversed — they connect the
    /// graph — but never returned.
    func searchLayer<S: TraversalSpace>(
        _ query: S, entry: Int, entryDistance: Float, ef: Int, level: Int,
        locks: StripedLocks?, ctx: SearchContext, allow: ((Int) -> Bool)?
    ) {
        ctx.reset()
        _ = ctx.visit(entry)
        ctx.candidates.push(entryDistance, UInt32(entry))
        if allow?(entry) ?? true { ctx.results.push(entryDistance, UInt32(entry)) }
        var bound = ctx.results.isEmpty ? Float.infinity : ctx.results.top.0
        let ids = ctx.ids
        let dist = ctx.distances
        while !ctx.candidates.isEmpty {
            let (d, c) = ctx.candidates.top
            if d > bound && ctx.results.count >= ef { break }
            ctx.candidates.pop()
            // Unvisited neighbours first, then their distances in one prefetching call.
            let block = links(Int(c), level: level)
            locks?.lock(Int(c))
            let n = Int(block[0])
            var m = 0
            for i in 0..<n {
                let nb = block[i + 1]
                if ctx.visit(Int(nb)) {
                    ids[m] = nb
                    m += 1
                }
            }
            locks?.unlock(Int(c))
            if m == 0 { continue }
            query.distances(ids, m, dist)
            for j in 0..<m {
                let dn = dist[j]
                if ctx.results.count < ef || dn < bound {
                    let nb = ids[j]
                    ctx.candidates.push(dn, nb)
                    if allow?(Int(nb)) ?? true {
                        ctx.results.push(dn, nb)
                        if ctx.results.count > ef { ctx.results.pop() }
                    }
                    if !ctx.results.isEmpty { bound = ctx.results.top.0 }
                }
            }
        }
    }

    /// Descends and beam-searches layer 0; `ctx.results` holds the best `ef` allowed nodes.
    private func traverse<S: TraversalSpace>(_ query: S, ef: Int, allow: ((Int) -> Bool)?, ctx: SearchContext) {
        let entryDistance = query.distance(entryPoint)
        let (start, startDistance) = descend(
            query, from: entryPoint, entryDistance: entryDistance, toLevel: 0, topLevel: maxLevel, locks: nil, ctx: ctx)
        searchLayer(query, entry: start, entryDistance: startDistance, ef: ef, level: 0, locks: nil, ctx: ctx, allow: allow)
    }

    /// The approximately nearest allowed rows to `q`, pushed into `top` with `tag | row` payloads.
    ///
    /// - Complexity: O(`ef` · `neighborsPerNode` · log n) distance evaluations, expected (`ef` is the width
    ///   of the beam, at least `top.k`).
    package func search(
        _ q: UnsafePointer<Float>, qInverseNorm: Float, ef: Int, space: DistanceSpace,
        allow: ((Int) -> Bool)?, into top: inout TopK, tag: UInt64
    ) {
        guard count > 0 else { return }
        withContext { ctx in
            traverse(FloatQuery(space: space, q: q, qInverseNorm: qInverseNorm), ef: max(ef, top.k), allow: allow, ctx: ctx)
            for i in 0..<ctx.results.count {
                top.insert(ctx.results.keys[i], tag | UInt64(ctx.results.nodes[i]))
            }
        }
    }

    /// Like ``search(_:qInverseNorm:ef:space:allow:into:tag:)``, but the beam (`ef × oversampling`) runs on
    /// int8 codes and every candidate it finds is rescored with the Float32 vectors, so the scores returned
    /// are exact and only the candidate set is approximate.
    package func searchQuantized(
        _ q: UnsafePointer<Float>, qInverseNorm: Float, ef: Int, oversampling: Int, space: DistanceSpace,
        codes: QuantizedVectors, allow: ((Int) -> Bool)?, into top: inout TopK, tag: UInt64
    ) {
        guard count > 0 else { return }
        let d = space.dimension
        withContext { ctx in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: d) { qCodes in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: maxLinks0 + 1) { scratch in
                    codes.encode(q, inverseNorm: qInverseNorm, metric: space.metric, into: qCodes.baseAddress!)
                    var qn: Float = 0
                    for j in 0..<d { qn += q[j] * q[j] }
                    let query = Int8Query(
                        codes: codes.codes, query: qCodes.baseAddress!, dimension: d, metric: space.metric,
                        scale2: codes.scale * codes.scale, squaredNorms: codes.squaredNorms, qSquaredNorm: qn,
                        scratch: scratch.baseAddress!)
                    traverse(query, ef: max(ef, top.k) * max(1, oversampling), allow: allow, ctx: ctx)
                }
            }
            let n = ctx.results.count
            space.distances(q, qInverseNorm, UnsafePointer(ctx.results.nodes), n, ctx.rescored(n))
            let exact = ctx.rescored(n)
            for i in 0..<n { top.insert(exact[i], tag | UInt64(ctx.results.nodes[i])) }
        }
    }
}

/// Striped mutexes guarding link lists during a concurrent build.
package final class StripedLocks: @unchecked Sendable {  // the mutexes are the synchronization
    private let mutexes: UnsafeMutablePointer<pthread_mutex_t>
    private let mask: Int

    package init(stripes: Int = 1 << 14) {
        mutexes = .allocate(capacity: stripes)
        for i in 0..<stripes { pthread_mutex_init(mutexes + i, nil) }
        mask = stripes - 1
    }

    deinit {
        for i in 0...mask { pthread_mutex_destroy(mutexes + i) }
        mutexes.deallocate()
    }

    @inline(__always) package func lock(_ node: Int) { pthread_mutex_lock(mutexes + (node & mask)) }
    @inline(__always) package func unlock(_ node: Int) { pthread_mutex_unlock(mutexes + (node & mask)) }
}
