// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// A fixed-size bit set with a cached population count; a value type (copy-on-write through the array).
///
/// Deletion marks of a segment or memtable are a `Bitmap`: a read view copies it in O(1) and a later
/// delete copies the words once, so readers never see a mark appear under them.
package struct Bitmap: Sendable, Equatable {
    package private(set) var words: [UInt64]
    package private(set) var count: Int
    package private(set) var setCount: Int = 0

    package init(count: Int) {
        self.count = count
        self.words = [UInt64](repeating: 0, count: (count + 63) / 64)
    }

    package init(words: [UInt64], count: Int) {
        self.count = count
        self.words = words
        self.setCount = words.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    @inline(__always)
    package func contains(_ i: Int) -> Bool {
        i < count && words[i >> 6] & (1 << UInt64(i & 63)) != 0
    }

    /// Sets bit `i`, growing the bitmap if needed. Returns whether it was newly set.
    @discardableResult
    package mutating func insert(_ i: Int) -> Bool {
        if i >= count {
            count = i + 1
            let needed = (count + 63) / 64
            if words.count < needed { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
        }
        let mask: UInt64 = 1 << UInt64(i & 63)
        if words[i >> 6] & mask != 0 { return false }
        words[i >> 6] |= mask
        setCount += 1
        return true
    }

    /// Grows the logical size (new bits are clear).
    package mutating func resize(to newCount: Int) {
        guard newCount > count else { return }
        count = newCount
        let needed = (count + 63) / 64
        if words.count < needed { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
    }

    package func forEachSet<E: Error>(_ body: (Int) throws(E) -> Void) throws(E) {
        for (w, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                let b = bits.trailingZeroBitCount
                try body(w << 6 | b)
                bits &= bits - 1
            }
        }
    }
}

extension Bitmap {
    /// A bitmap of `count` bits, all set.
    package static func full(count: Int) -> Bitmap {
        var words = [UInt64](repeating: ~0, count: (count + 63) / 64)
        if count % 64 != 0 { words[words.count - 1] = (1 << UInt64(count % 64)) - 1 }
        return Bitmap(words: words, count: count)
    }

    /// The bits set in `self` and not in `other`.
    package func subtracting(_ other: Bitmap) -> Bitmap {
        var w = words
        for i in 0..<min(w.count, other.words.count) { w[i] &= ~other.words[i] }
        return Bitmap(words: w, count: count)
    }

    /// The bits set in both.
    package func intersection(_ other: Bitmap) -> Bitmap {
        var w = words
        for i in w.indices { w[i] &= i < other.words.count ? other.words[i] : 0 }
        return Bitmap(words: w, count: count)
    }

    /// The bits set in either (sized as `self`).
    package func union(_ other: Bitmap) -> Bitmap {
        var w = words
        for i in 0..<min(w.count, other.words.count) { w[i] |= other.words[i] }
        return Bitmap(words: w, count: count)
    }

    /// The set bits for which `keep` holds.
    package func filter(_ keep: (Int) throws(SextantError) -> Bool) throws(SextantError) -> Bitmap {
        var w = words
        for i in w.indices where w[i] != 0 {
            var bits = w[i]
            while bits != 0 {
                let b = bits.trailingZeroBitCount
                bits &= bits - 1
                if !(try keep(i << 6 | b)) { w[i] &= ~(1 << UInt64(b)) }
            }
        }
        return Bitmap(words: w, count: count)
    }
}
