// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#endif

extension HNSWGraph {
    /// Greedy descent from `entry` through the layers above `target`, each time to the closest neighbour.
    @inline(__always)
    func descend(
        _ q: UnsafePointer<Float>, _ qInv: Float, from entry: Int, entryDistance: Float, toLevel target: Int,
        topLevel: Int, space: DistanceSpace, locks: StripedLocks?, ctx: SearchContext
    ) -> (Int, Float) {
        var cur = entry
        var curDist = entryDistance
        var level = topLevel
        while level > target {
            var changed = true
            while changed {
                changed = false
                let n = readLinks(cur, level: level, locks: locks, into: ctx.ids)
                space.distances(q, qInv, ctx.ids, n, ctx.distances)
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
    func searchLayer(
        _ q: UnsafePointer<Float>, _ qInv: Float, entry: Int, entryDistance: Float, ef: Int, level: Int,
        space: DistanceSpace, locks: StripedLocks?, ctx: SearchContext, allow: ((Int) -> Bool)?
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
            space.distances(q, qInv, ids, m, dist)
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
            let entryDistance = space.distance(q, qInverseNorm, entryPoint)
            let (start, startDistance) = descend(
                q, qInverseNorm, from: entryPoint, entryDistance: entryDistance, toLevel: 0, topLevel: maxLevel,
                space: space, locks: nil, ctx: ctx)
            searchLayer(
                q, qInverseNorm, entry: start, entryDistance: startDistance, ef: max(ef, top.k), level: 0,
                space: space, locks: nil, ctx: ctx, allow: allow)
            for i in 0..<ctx.results.count {
                top.insert(ctx.results.keys[i], tag | UInt64(ctx.results.nodes[i]))
            }
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
