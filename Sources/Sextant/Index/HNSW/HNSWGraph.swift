// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A Hierarchical Navigable Small World graph over the rows of one sealed segment
/// (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using HNSW graphs", 2016).
///
/// Layout, chosen so a built graph can be written and memory-mapped as is, with no per-node objects:
/// - `levels[i]`: the top level of node i (level 0 = base layer only);
/// - `level0`: n blocks of `1 + maxLinks0` UInt32: a count, then neighbour rows;
/// - `upperOffsets[i]`: index of node i's first upper block (levels 1…levels[i] are consecutive blocks);
/// - `upperLinks`: blocks of `1 + maxLinks` UInt32, same shape as level 0.
package final class HNSWGraph: @unchecked Sendable {  // immutable after build; the build synchronizes itself
    package let count: Int
    /// Links per node per upper layer (aka M).
    package let neighborsPerNode: Int
    /// Links per node on layer 0 (2·M, as in the paper).
    package var maxLinks0: Int { neighborsPerNode * 2 }
    package let indexingSearchCount: Int
    package internal(set) var entryPoint: Int
    package internal(set) var maxLevel: Int

    package let levels: UnsafePointer<UInt8>
    package let level0: UnsafeMutablePointer<UInt32>
    package let upperOffsets: UnsafePointer<UInt32>
    package let upperLinks: UnsafeMutablePointer<UInt32>
    package let upperBlockCount: Int
    /// Who frees the arrays: the graph (built in memory) or a mapping (loaded from a file).
    private let owner: Owner
    package enum Owner {
        case heap
        case mapping(release: @Sendable () -> Void)
    }

    private let contexts = Locked<[SearchContext]>([])

    package init(
        count: Int, neighborsPerNode: Int, indexingSearchCount: Int, entryPoint: Int, maxLevel: Int,
        levels: UnsafePointer<UInt8>, level0: UnsafeMutablePointer<UInt32>, upperOffsets: UnsafePointer<UInt32>,
        upperLinks: UnsafeMutablePointer<UInt32>, upperBlockCount: Int, owner: Owner
    ) {
        self.count = count
        self.neighborsPerNode = neighborsPerNode
        self.indexingSearchCount = indexingSearchCount
        self.entryPoint = entryPoint
        self.maxLevel = maxLevel
        self.levels = levels
        self.level0 = level0
        self.upperOffsets = upperOffsets
        self.upperLinks = upperLinks
        self.upperBlockCount = upperBlockCount
        self.owner = owner
    }

    deinit {
        switch owner {
        case .heap:
            UnsafeMutablePointer(mutating: levels).deallocate()
            level0.deallocate()
            UnsafeMutablePointer(mutating: upperOffsets).deallocate()
            upperLinks.deallocate()
        case .mapping(let release):
            release()
        }
    }

    /// The link block (count, then rows) of `node` at `level`.
    @inline(__always)
    package func links(_ node: Int, level: Int) -> UnsafeMutablePointer<UInt32> {
        if level == 0 { return level0 + node * (maxLinks0 + 1) }
        return upperLinks + (Int(upperOffsets[node]) + level - 1) * (neighborsPerNode + 1)
    }

    @inline(__always)
    package func maxLinks(_ level: Int) -> Int { level == 0 ? maxLinks0 : neighborsPerNode }

    /// Bytes of graph structure (what `info` reports as index bytes).
    package var byteCount: Int {
        count + count * (maxLinks0 + 1) * 4 + count * 4 + upperBlockCount * (neighborsPerNode + 1) * 4
    }

    // MARK: Search contexts

    /// Scratch space for one search: a generation-stamped visited set, two heaps and neighbour buffers,
    /// all raw memory so the traversal loop has no bounds or uniqueness checks. Reused through a pool, never
    /// used by two threads at once.
    package final class SearchContext: @unchecked Sendable {  // used by one thread at a time (pooled)
        let visited: UnsafeMutablePointer<UInt16>
        var generation: UInt16 = 0
        let capacity: Int
        var candidates = MinHeap()
        var results = MaxHeap()
        /// Neighbour ids read from a link block, and their distances.
        let ids: UnsafeMutablePointer<UInt32>
        let distances: UnsafeMutablePointer<Float>
        /// Exact distances of quantized-search candidates (grown on demand).
        private var rescoreBuffer: UnsafeMutablePointer<Float>
        private var rescoreCapacity = 0

        func rescored(_ n: Int) -> UnsafeMutablePointer<Float> {
            if n > rescoreCapacity {
                rescoreBuffer.deallocate()
                rescoreCapacity = max(n, 2 * rescoreCapacity)
                rescoreBuffer = .allocate(capacity: rescoreCapacity)
            }
            return rescoreBuffer
        }

        init(count: Int, maxLinks: Int) {
            capacity = count
            visited = .allocate(capacity: max(1, count))
            visited.initialize(repeating: 0, count: max(1, count))
            ids = .allocate(capacity: maxLinks + 1)
            distances = .allocate(capacity: maxLinks + 1)
            rescoreBuffer = .allocate(capacity: 1)
        }

        deinit {
            visited.deallocate()
            ids.deallocate()
            distances.deallocate()
            rescoreBuffer.deallocate()
            candidates.free()
            results.free()
        }

        /// Starts a new search: O(1) except once every 65,535 searches.
        @inline(__always)
        func reset() {
            generation &+= 1
            if generation == 0 {
                visited.update(repeating: 0, count: capacity)
                generation = 1
            }
            candidates.removeAll()
            results.removeAll()
        }

        /// Marks `node` visited; returns whether it was new.
        @inline(__always)
        func visit(_ node: Int) -> Bool {
            if visited[node] == generation { return false }
            visited[node] = generation
            return true
        }
    }

    package func withContext<R>(_ body: (SearchContext) throws -> R) rethrows -> R {
        let ctx = contexts.withLock { $0.popLast() } ?? SearchContext(count: count, maxLinks: maxLinks0)
        defer { contexts.withLock { $0.append(ctx) } }
        return try body(ctx)
    }
}

/// A binary heap of (distance, node) pairs in raw, growable memory; `Order` picks min- or max-heap.
package struct RawHeap<Order: HeapOrder> {
    private(set) var keys: UnsafeMutablePointer<Float>
    private(set) var nodes: UnsafeMutablePointer<UInt32>
    private(set) var count = 0
    private var capacity = 64

    init() {
        keys = .allocate(capacity: 64)
        nodes = .allocate(capacity: 64)
    }

    /// Frees the memory; called by the owning context's deinit.
    func free() {
        keys.deallocate()
        nodes.deallocate()
    }

    var isEmpty: Bool { count == 0 }
    var top: (Float, UInt32) { (keys[0], nodes[0]) }

    @inline(__always) mutating func removeAll() { count = 0 }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let k = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity)
        let n = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
        k.update(from: keys, count: count)
        n.update(from: nodes, count: count)
        keys.deallocate()
        nodes.deallocate()
        keys = k
        nodes = n
        capacity = newCapacity
    }

    @inline(__always)
    mutating func push(_ key: Float, _ node: UInt32) {
        if count == capacity { grow() }
        var i = count
        count += 1
        while i > 0 {
            let p = (i - 1) >> 1
            if !Order.before(key, keys[p]) { break }
            keys[i] = keys[p]
            nodes[i] = nodes[p]
            i = p
        }
        keys[i] = key
        nodes[i] = node
    }

    @inline(__always)
    @discardableResult
    mutating func pop() -> (Float, UInt32) {
        let result = (keys[0], nodes[0])
        count -= 1
        if count > 0 {
            let lastKey = keys[count]
            let lastNode = nodes[count]
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= count { break }
                var c = l
                if l + 1 < count && Order.before(keys[l + 1], keys[l]) { c = l + 1 }
                if !Order.before(keys[c], lastKey) { break }
                keys[i] = keys[c]
                nodes[i] = nodes[c]
                i = c
            }
            keys[i] = lastKey
            nodes[i] = lastNode
        }
        return result
    }
}

package protocol HeapOrder {
    static func before(_ a: Float, _ b: Float) -> Bool
}
package enum Ascending: HeapOrder {
    @inline(__always) package static func before(_ a: Float, _ b: Float) -> Bool { a < b }
}
package enum Descending: HeapOrder {
    @inline(__always) package static func before(_ a: Float, _ b: Float) -> Bool { a > b }
}
/// Closest on top: the frontier of a beam search.
package typealias MinHeap = RawHeap<Ascending>
/// Farthest on top: the best results so far, the worst of them first out.
package typealias MaxHeap = RawHeap<Descending>
