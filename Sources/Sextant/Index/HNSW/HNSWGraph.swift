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

    private let contexts = Mutex<[SearchContext]>([])

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

    /// Scratch space for one search: a generation-stamped visited set and two heaps. Reused, never shared
    /// between threads at the same time.
    package final class SearchContext: @unchecked Sendable {  // used by one thread at a time (pooled)
        var visited: UnsafeMutablePointer<UInt16>
        var generation: UInt16 = 0
        let capacity: Int
        var candidates = MinHeap()
        var results = MaxHeap()
        var neighborBuffer: [UInt32]

        init(count: Int, maxLinks: Int) {
            capacity = count
            visited = .allocate(capacity: max(1, count))
            visited.initialize(repeating: 0, count: max(1, count))
            neighborBuffer = [UInt32](repeating: 0, count: maxLinks + 1)
        }

        deinit { visited.deallocate() }

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

/// A binary min-heap of (distance, node) on flat arrays.
package struct MinHeap {
    var keys: [Float] = []
    var nodes: [UInt32] = []
    var isEmpty: Bool { keys.isEmpty }
    var count: Int { keys.count }
    var top: (Float, UInt32) { (keys[0], nodes[0]) }

    mutating func removeAll() {
        keys.removeAll(keepingCapacity: true)
        nodes.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    mutating func push(_ key: Float, _ node: UInt32) {
        keys.append(key)
        nodes.append(node)
        var i = keys.count - 1
        keys.withUnsafeMutableBufferPointer { k in
            nodes.withUnsafeMutableBufferPointer { n in
                while i > 0 {
                    let p = (i - 1) >> 1
                    if k[p] <= k[i] { break }
                    k.swapAt(p, i)
                    n.swapAt(p, i)
                    i = p
                }
            }
        }
    }

    @inline(__always)
    @discardableResult
    mutating func pop() -> (Float, UInt32) {
        let result = (keys[0], nodes[0])
        let lastKey = keys.removeLast()
        let lastNode = nodes.removeLast()
        if !keys.isEmpty {
            keys.withUnsafeMutableBufferPointer { k in
                nodes.withUnsafeMutableBufferPointer { n in
                    let count = k.count
                    var i = 0
                    while true {
                        let l = 2 * i + 1
                        if l >= count { break }
                        var c = l
                        if l + 1 < count && k[l + 1] < k[l] { c = l + 1 }
                        if lastKey <= k[c] { break }
                        k[i] = k[c]
                        n[i] = n[c]
                        i = c
                    }
                    k[i] = lastKey
                    n[i] = lastNode
                }
            }
        }
        return result
    }
}

/// A binary max-heap of (distance, node): the current best results, worst on top.
package struct MaxHeap {
    var keys: [Float] = []
    var nodes: [UInt32] = []
    var isEmpty: Bool { keys.isEmpty }
    var count: Int { keys.count }
    var top: (Float, UInt32) { (keys[0], nodes[0]) }

    mutating func removeAll() {
        keys.removeAll(keepingCapacity: true)
        nodes.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    mutating func push(_ key: Float, _ node: UInt32) {
        keys.append(key)
        nodes.append(node)
        var i = keys.count - 1
        keys.withUnsafeMutableBufferPointer { k in
            nodes.withUnsafeMutableBufferPointer { n in
                while i > 0 {
                    let p = (i - 1) >> 1
                    if k[p] >= k[i] { break }
                    k.swapAt(p, i)
                    n.swapAt(p, i)
                    i = p
                }
            }
        }
    }

    @inline(__always)
    @discardableResult
    mutating func pop() -> (Float, UInt32) {
        let result = (keys[0], nodes[0])
        let lastKey = keys.removeLast()
        let lastNode = nodes.removeLast()
        if !keys.isEmpty {
            keys.withUnsafeMutableBufferPointer { k in
                nodes.withUnsafeMutableBufferPointer { n in
                    let count = k.count
                    var i = 0
                    while true {
                        let l = 2 * i + 1
                        if l >= count { break }
                        var c = l
                        if l + 1 < count && k[l + 1] > k[l] { c = l + 1 }
                        if lastKey >= k[c] { break }
                        k[i] = k[c]
                        n[i] = n[c]
                        i = c
                    }
                    k[i] = lastKey
                    n[i] = lastNode
                }
            }
        }
        return result
    }
}
