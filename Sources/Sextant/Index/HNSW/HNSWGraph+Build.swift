// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension HNSWGraph {
    /// Builds a graph over rows `0..<count` of `space`, inserting on `threads` threads.
    ///
    /// Node levels come from a hash of (`seed`, row), so they do not depend on thread timing; with one
    /// thread the whole build is repeatable. `shouldStop` is polled to abandon a build (returns nil).
    /// - Complexity: O(n · `indexingSearchCount` · `neighborsPerNode` · log n) distance evaluations, expected.
    package static func build(
        space: DistanceSpace, count: Int, neighborsPerNode m: Int = 16, indexingSearchCount efc: Int = 200,
        threads: Int = 0, seed: UInt64 = 0x5E87_A171, shouldStop: @Sendable () -> Bool = { false }
    ) -> HNSWGraph? {
        precondition(m >= 2 && m <= 255, "neighborsPerNode must be in 2...255")
        // Levels: P(level ≥ l) = M^-l (mL = 1/ln M).
        let levels = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, count))
        let mL = 1 / log(Double(m))
        var upperBlocks = 0
        let upperOffsets = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, count))
        var maxLevel = 0
        var entry = 0
        for i in 0..<count {
            let h = mix64(seed ^ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
            let u = (Double(h >> 11) + 1) * 0x1p-53  // (0, 1]
            let level = min(16, Int(-log(u) * mL))
            levels[i] = UInt8(level)
            upperOffsets[i] = UInt32(upperBlocks)
            upperBlocks += level
        }
        let level0 = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, count * (2 * m + 1)))
        level0.initialize(repeating: 0, count: max(1, count * (2 * m + 1)))
        let upperLinks = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, upperBlocks * (m + 1)))
        upperLinks.initialize(repeating: 0, count: max(1, upperBlocks * (m + 1)))
        if count > 0 {
            maxLevel = Int(levels[0])
            entry = 0
        }
        let graph = HNSWGraph(
            count: count, neighborsPerNode: m, indexingSearchCount: efc, entryPoint: entry, maxLevel: maxLevel,
            levels: levels, level0: level0, upperOffsets: upperOffsets, upperLinks: upperLinks,
            upperBlockCount: upperBlocks, owner: .heap)
        guard count > 1 else { return graph }

        let locks = StripedLocks()
        let entryLock = EntryState((0, maxLevel))
        let growLock = StripedLocks(stripes: 1)
        let next = Atomic<Int>(1)
        let stopped = Atomic<Bool>(false)
        let workers = max(1, min(threads > 0 ? threads : AvailableCPUs.count, count / 1000 + 1))
        do {
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                let ctx = SearchContext(count: count, maxLinks: 2 * m)
                while true {
                    let node = next.add(1, ordering: .relaxed).oldValue
                    if node >= count { return }
                    if node & 63 == 0 && shouldStop() {
                        stopped.store(true, ordering: .relaxed)
                        return
                    }
                    graph.insert(node, space: space, locks: locks, entryLock: entryLock, growLock: growLock, ctx: ctx)
                }
            }
        }
        if stopped.load(ordering: .relaxed) { return nil }
        let (e, l) = entryLock.state.withLock { ($0.entry, $0.maxLevel) }
        graph.entryPoint = e
        graph.maxLevel = l
        graph._checkInvariants()
        return graph
    }

    private func insert(
        _ node: Int, space: DistanceSpace, locks: StripedLocks, entryLock: EntryState,
        growLock: StripedLocks, ctx: SearchContext
    ) {
        let level = Int(levels[node])
        var (entry, top) = entryLock.state.withLock { ($0.entry, $0.maxLevel) }
        // A node that raises the top level holds the grow lock for its whole insertion (as hnswlib does), so
        // two such nodes do not race to become the entry point.
        let grows = level > top
        if grows {
            growLock.lock(0)
            (entry, top) = entryLock.state.withLock { ($0.entry, $0.maxLevel) }
        }
        defer { if grows { growLock.unlock(0) } }

        let query = FloatQuery(space: space, q: space.vector(node), qInverseNorm: space.inverseNorms[node])
        var cur = entry
        var curDist = query.distance(cur)
        if level < top {
            (cur, curDist) = descend(query, from: cur, entryDistance: curDist, toLevel: level, topLevel: top, locks: locks, ctx: ctx)
        }
        // Phase 1: the node's own link lists on every level, top down. Nothing links to the node yet, so
        // no other thread can reach it while its lower levels are still empty. (Linking it in level by level,
        // as the paper's pseudo-code reads, let concurrent inserts descend into its empty lower lists and
        // end up with one poor neighbour: recall then plateaued near 0.98 with 2 build threads.)
        var selectedPerLevel: [(level: Int, selected: [(Float, UInt32)])] = []
        var l = min(level, top)
        while l >= 0 {
            searchLayer(query, entry: cur, entryDistance: curDist, ef: indexingSearchCount, level: l, locks: locks, ctx: ctx, allow: nil)
            var candidates: [(Float, UInt32)] = []
            candidates.reserveCapacity(ctx.results.count)
            while !ctx.results.isEmpty { candidates.append(ctx.results.pop()) }
            candidates.reverse()  // closest first
            let selected = selectNeighbors(candidates, limit: neighborsPerNode, space: space)
            let block = links(node, level: l)
            locks.lock(node)
            block[0] = UInt32(selected.count)
            for (i, s) in selected.enumerated() { block[i + 1] = s.1 }
            locks.unlock(node)
            selectedPerLevel.append((l, selected))
            cur = Int(candidates[0].1)
            curDist = candidates[0].0
            l -= 1
        }
        // Phase 2: back links, shrinking full lists with the same heuristic. From here the node is reachable,
        // and every one of its levels is complete.
        for (l, selected) in selectedPerLevel {
            for s in selected { connect(Int(s.1), to: node, distance: s.0, level: l, space: space, locks: locks) }
        }
        if grows {
            entryLock.state.withLock { state in
                if level > state.maxLevel {
                    state.maxLevel = level
                    state.entry = node
                }
            }
        }
    }

    private func connect(_ nb: Int, to node: Int, distance: Float, level: Int, space: DistanceSpace, locks: StripedLocks) {
        let block = links(nb, level: level)
        let capacity = maxLinks(level)
        locks.lock(nb)
        defer { locks.unlock(nb) }
        let n = Int(block[0])
        for i in 0..<n where block[i + 1] == UInt32(node) { return }
        if n < capacity {
            block[n + 1] = UInt32(node)
            block[0] = UInt32(n + 1)
            return
        }
        var candidates: [(Float, UInt32)] = [(distance, UInt32(node))]
        candidates.reserveCapacity(n + 1)
        for i in 0..<n {
            let other = Int(block[i + 1])
            candidates.append((space.distance(nb, other), UInt32(other)))
        }
        candidates.sort { $0.0 < $1.0 }
        let kept = selectNeighbors(candidates, limit: capacity, space: space)
        block[0] = UInt32(kept.count)
        for (i, k) in kept.enumerated() { block[i + 1] = k.1 }
    }

    /// The neighbour-selection heuristic (Algorithm 4 of the paper): take candidates closest first, and keep
    /// one only if it is closer to the base than to every neighbour kept so far. This spreads links over
    /// directions instead of clustering them, which keeps the graph navigable.
    private func selectNeighbors(_ candidates: [(Float, UInt32)], limit: Int, space: DistanceSpace) -> [(Float, UInt32)] {
        if candidates.count <= limit { return candidates }
        var kept: [(Float, UInt32)] = []
        kept.reserveCapacity(limit)
        for c in candidates {
            if kept.count >= limit { break }
            var good = true
            for k in kept where space.distance(Int(c.1), Int(k.1)) < c.0 {
                good = false
                break
            }
            if good { kept.append(c) }
        }
        return kept
    }

    #if SEXTANT_INTERNAL_CHECKS
    @inline(never) func _checkInvariants() {
        for node in 0..<count {
            for l in 0...Int(levels[node]) {
                let b = links(node, level: l)
                precondition(Int(b[0]) <= maxLinks(l), "node \(node) level \(l): too many links")
                for i in 0..<Int(b[0]) {
                    let nb = Int(b[i + 1])
                    precondition(nb < count && nb != node && Int(levels[nb]) >= l, "node \(node) level \(l): bad link \(nb)")
                }
            }
        }
    }
    #else
    @inline(__always) func _checkInvariants() {}
    #endif
}

/// The graph's entry point and top level while it is being built.
final class EntryState: Sendable {
    let state: Locked<(entry: Int, maxLevel: Int)>
    init(_ initial: (entry: Int, maxLevel: Int)) { state = Locked(initial) }
}
