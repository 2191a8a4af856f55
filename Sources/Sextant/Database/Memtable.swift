// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels

/// The in-memory table of recent writes.
///
/// Rows are appended into fixed-capacity, 64-byte aligned vector storage that never moves, so a reader
/// that captured `count` (under the collection's state lock) may scan rows `0..<count` without holding the
/// lock: those bytes are never written again. Every other property is read and written under the
/// collection's state lock. When full, the table is frozen (no more appends) and flushed to a segment.
package final class Memtable: @unchecked Sendable {  // guarded by Collection's state lock; see above
    package let dimension: Int
    package let capacity: Int
    package let vectors: UnsafeMutablePointer<Float>
    package let inverseNorms: UnsafeMutablePointer<Float>
    package private(set) var count = 0
    package private(set) var ids: [RecordID] = []
    package private(set) var keys: [[UInt8]] = []
    package private(set) var metadata: [[UInt8]] = []
    package private(set) var documents: [String?] = []
    package var index: [RecordID: Int32] = [:]
    package var deleted: Bitmap
    package var maxSeq: UInt64 = 0
    /// Set when frozen: the first WAL file holding no batch of this table.
    package var walFileAfterFreeze: UInt64 = 0
    package private(set) var payloadBytes = 0
    /// The documents' postings, built on the first full-text search that reaches this table.
    package let textIndex = MemtableTextIndex()

    package init(dimension: Int, capacity: Int) {
        self.dimension = dimension
        self.capacity = capacity
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, capacity * dimension) * 4, alignment: 64)
        vectors = raw.bindMemory(to: Float.self, capacity: max(1, capacity * dimension))
        inverseNorms = .allocate(capacity: max(1, capacity))
        deleted = Bitmap(count: 0)
    }

    deinit {
        UnsafeMutableRawPointer(vectors).deallocate()
        inverseNorms.deallocate()
    }

    package var isFull: Bool { count >= capacity }
    package var liveCount: Int { count - deleted.setCount }

    /// Appends a row (the caller has marked any older version deleted). Returns the row number.
    package func append(_ m: Mutation, seq: UInt64) -> Int {
        precondition(count < capacity, "memtable overflow")
        let row = count
        m.vector.withUnsafeBufferPointer { src in
            (vectors + row * dimension).update(from: src.baseAddress!, count: dimension)
        }
        inverseNorms[row] = inverseNorm(m.vector)
        ids.append(m.id)
        keys.append(m.key)
        metadata.append(m.metadata)
        documents.append(m.document)
        index[m.id] = Int32(row)
        deleted.resize(to: row + 1)
        payloadBytes += m.key.count + m.metadata.count + (m.document?.utf8.count ?? 0)
        count += 1
        maxSeq = max(maxSeq, seq)
        return row
    }

    package func vector(_ row: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: vectors + row * dimension, count: dimension)
    }
}

/// 1/‖v‖, or 0 for the zero vector; computed in Double in a fixed order (``sx_sumsq_f64``) so it is the
/// same wherever it is computed.
package func inverseNorm(_ v: UnsafeBufferPointer<Float>) -> Float {
    let s = v.isEmpty ? 0 : sx_sumsq_f64(v.baseAddress!, v.count)
    return s > 0 ? Float(1 / s.squareRoot()) : 0
}

package func inverseNorm(_ v: [Float]) -> Float {
    v.withUnsafeBufferPointer { inverseNorm($0) }
}

/// A frozen memtable's live rows, as a segment source. Frozen tables are never appended to, so their
/// arrays can be read without the state lock. Documents are kept as UTF-8 arrays for the duration.
package struct MemtableRows: SegmentRowSource {
    package let table: Memtable
    package let rows: [Int]
    private let documents: [[UInt8]?]

    package init(table: Memtable, rows: [Int]) {
        self.table = table
        self.rows = rows
        self.documents = rows.map { table.documents[$0].map { Array($0.utf8) } }
    }

    package var rowCount: Int { rows.count }
    package func vector(_ row: Int) -> UnsafeBufferPointer<Float> { table.vector(rows[row]) }
    package func inverseNorm(_ row: Int) -> Float { table.inverseNorms[rows[row]] }
    package func withPayload<R>(
        _ row: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws(SextantError) -> R
    ) throws(SextantError) -> R {
        try table.keys[rows[row]].withBytes { (key) throws(SextantError) in
            try table.metadata[rows[row]].withBytes { (metadata) throws(SextantError) in
                if let document = documents[row] {
                    return try document.withBytes { (d) throws(SextantError) in try body(key, metadata, d) }
                }
                return try body(key, metadata, nil)
            }
        }
    }
}

/// Live rows of sealed segments, as a segment source (compaction).
package struct SegmentRows: SegmentRowSource {
    package let rows: [(segment: Segment, row: Int)]
    package var rowCount: Int { rows.count }
    package func vector(_ row: Int) throws(SextantError) -> UnsafeBufferPointer<Float> {
        let (s, r) = rows[row]
        return UnsafeBufferPointer(start: try s.vectors() + r * s.dimension, count: s.dimension)
    }
    package func inverseNorm(_ row: Int) throws(SextantError) -> Float { try rows[row].segment.inverseNorms()[rows[row].row] }
    package func withPayload<R>(
        _ row: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws(SextantError) -> R
    ) throws(SextantError) -> R {
        // Mapped bytes: valid while the segment is, which outlives the write.
        let (s, r) = rows[row]
        return try body(try s.key(r), try s.metadata(r), try s.document(r))
    }
    package func releasePages() {
        var seen = Set<ObjectIdentifier>()
        for (s, _) in rows where seen.insert(ObjectIdentifier(s)).inserted { s.releaseAllPages() }
    }
}
