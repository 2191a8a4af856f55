// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// The `k` smallest keys seen so far (a bounded max-heap), with a 64-bit payload each.
///
/// Keys are "lower is better" for every metric: similarities are negated before they get here.
package struct TopK {
    package let k: Int
    package private(set) var keys: [Float] = []
    package private(set) var payloads: [UInt64] = []

    package init(k: Int) {
        self.k = k
        keys.reserveCapacity(k)
        payloads.reserveCapacity(k)
    }

    /// The key a candidate must beat to enter (infinity until the heap is full).
    @inline(__always)
    package var threshold: Float { keys.count < k ? .infinity : keys[0] }

    @inline(__always)
    package mutating func insert(_ key: Float, _ payload: UInt64) {
        if keys.count < k {
            keys.append(key)
            payloads.append(payload)
            siftUp(keys.count - 1)
        } else if key < keys[0] {
            keys[0] = key
            payloads[0] = payload
            siftDown(0)
        }
    }

    private mutating func siftUp(_ i: Int) {
        var i = i
        while i > 0 {
            let p = (i - 1) / 2
            if keys[p] >= keys[i] { break }
            keys.swapAt(p, i)
            payloads.swapAt(p, i)
            i = p
        }
    }

    private mutating func siftDown(_ i: Int) {
        var i = i
        let n = keys.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && keys[l + 1] > keys[l] { c = l + 1 }
            if keys[i] >= keys[c] { break }
            keys.swapAt(i, c)
            payloads.swapAt(i, c)
            i = c
        }
    }

    /// The contents, best (smallest key) first; ties broken by payload for determinism.
    package func sorted() -> [(key: Float, payload: UInt64)] {
        zip(keys, payloads).map { ($0, $1) }.sorted { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
    }
}
