// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// The `k` smallest keys seen so far (a bounded max-heap), with a 64-bit payload each.
///
/// Keys are "lower is better" for every metric: similarities are negated before they get here. The order
/// is total and deterministic: by key, then by payload; a NaN key counts as +infinity. So the contents
/// are exactly the `k` least (key, payload) pairs inserted, whatever the order of insertion — a key of
/// +inf or NaN (a distance that overflowed Float32) is ranked last, never lost while there is room.
package struct TopK {
    package let k: Int
    package private(set) var keys: [Float] = []
    package private(set) var payloads: [UInt64] = []

    /// - Parameter k: at least 1. Callers pass min(limit, rows available): the heap reserves `k` slots.
    package init(k: Int) {
        precondition(k > 0, "TopK needs k ≥ 1")
        self.k = k
        keys.reserveCapacity(k)
        payloads.reserveCapacity(k)
    }

    /// A candidate whose key is greater than this cannot enter (+infinity until the heap is full). Test
    /// `!(key > threshold)` — not `key < threshold` — so that +inf and NaN keys get in while there is room;
    /// ``insert(_:_:)`` makes the exact decision (ties go to the smaller payload).
    @inline(__always)
    package var threshold: Float { keys.count < k ? .infinity : keys[0] }

    @inline(__always)
    package mutating func insert(_ key: Float, _ payload: UInt64) {
        let key = key.isNaN ? Float.infinity : key
        if keys.count < k {
            keys.append(key)
            payloads.append(payload)
            siftUp(keys.count - 1)
        } else if Self.precedes(key, payload, keys[0], payloads[0]) {
            keys[0] = key
            payloads[0] = payload
            siftDown(0)
        }
    }

    /// (a, pa) ranks before (b, pb). Keys are never NaN here.
    @inline(__always)
    private static func precedes(_ a: Float, _ pa: UInt64, _ b: Float, _ pb: UInt64) -> Bool {
        a < b || (a == b && pa < pb)
    }

    @inline(__always)
    private func ranksBefore(_ i: Int, _ j: Int) -> Bool { Self.precedes(keys[i], payloads[i], keys[j], payloads[j]) }

    private mutating func siftUp(_ i: Int) {
        var i = i
        while i > 0 {
            let p = (i - 1) / 2
            if !ranksBefore(p, i) { break }  // the parent must rank after (be worse than) its children
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
            if l + 1 < n && ranksBefore(l, l + 1) { c = l + 1 }
            if !ranksBefore(i, c) { break }
            keys.swapAt(i, c)
            payloads.swapAt(i, c)
            i = c
        }
    }

    /// The contents, best (smallest key) first; ties broken by payload for determinism.
    package func sorted() -> [(key: Float, payload: UInt64)] {
        zip(keys, payloads).map { ($0, $1) }.sorted { Self.precedes($0.0, $0.1, $1.0, $1.1) }
    }
}
