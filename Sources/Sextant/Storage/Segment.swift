// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The sections a segment file may hold. Raw values are the on-disk kind numbers.
package enum SectionKind: UInt32, CaseIterable, Sendable {
    /// rowCount × dimension Float32, row-major, 64-byte aligned.
    case vectors = 1
    /// rowCount Float32: 1 / ‖v‖ (0 for a zero vector). Lets cosine use the dot kernel without normalizing stored vectors.
    case inverseNorms = 2
    /// Blob of record keys (see ``RecordID/key``).
    case keys = 3
    /// rowCount UInt32: rows sorted by key bytes (for get-by-id and for scroll's id order).
    case keyOrder = 4
    /// Blocked Bloom filter over keys: most ids a new upsert looks up are in no segment.
    case bloom = 5
    /// Blob of compact-JSON metadata (empty = none).
    case metadata = 6
    /// Blob of UTF-8 documents.
    case documents = 7
    /// ⌈rowCount/64⌉ UInt64 words: bit set = the row has a document (distinguishes none from "").
    case documentPresence = 8

    package var name: String { String(describing: self) }
}

/// Layout constants of segment files. See Docs/FileFormat.md.
package enum SegmentFile {
    package static let magic: [UInt8] = Array("SEXTSEG\0".utf8)
    package static let footerMagic: [UInt8] = Array("SEXTSEGE".utf8)
    package static let version: UInt32 = 1
    package static let headerSize = 64
    package static let footerSize = 32
    package static let tableEntrySize = 32
    package static let alignment = 64

    package static func name(_ id: UInt64) -> String { hex16(id) + ".seg" }
    package static func deletionName(_ id: UInt64, generation: UInt64) -> String { hex16(id) + "." + hex16(generation) + ".del" }
}

package func hex16(_ v: UInt64) -> String {
    let hex = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - hex.count)) + hex
}

/// 64-bit hash of a record key (FNV-1a, then MurmurHash3's finalizer to spread the bits).
@inline(__always)
package func keyHash(_ key: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in key { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return mix64(h)
}

/// A blocked Bloom filter: each key sets `probes` bits inside one 512-bit block, so a lookup touches a
/// single cache line. About 10 bits per key → ~1% false positives.
package enum BlockedBloom {
    package static let probes = 7
    package static let blockBits = 512

    package static func blockCount(forKeys n: Int) -> Int { max(1, (n * 10 + blockBits - 1) / blockBits) }

    @inline(__always)
    package static func positions(_ h: UInt64, blocks: Int, _ body: (Int) -> Void) {
        let block = Int((UInt64(UInt32(truncatingIfNeeded: h >> 32)) &* UInt64(blocks)) >> 32)
        let h1 = UInt32(truncatingIfNeeded: h)
        let h2 = (h1 >> 17 | h1 << 15) | 1
        for i in 0..<UInt32(probes) {
            body(block * blockBits + Int((h1 &+ i &* h2) & 511))
        }
    }
}

/// A row-oriented source of data for ``SegmentWriter``.
package protocol SegmentRowSource {
    var rowCount: Int { get }
    func vector(_ row: Int) throws(SextantError) -> UnsafeBufferPointer<Float>
    func inverseNorm(_ row: Int) throws(SextantError) -> Float
    func key(_ row: Int) throws(SextantError) -> UnsafeRawBufferPointer
    func metadata(_ row: Int) throws(SextantError) -> UnsafeRawBufferPointer
    /// nil when the row has no document.
    func document(_ row: Int) throws(SextantError) -> UnsafeRawBufferPointer?
    /// Called as the writer streams through the rows: a source reading mapped files may give their
    /// resident pages back (they stay in the page cache).
    func releasePages()
}

extension SegmentRowSource {
    package func releasePages() {}
}

/// Buffered sequential writer that tracks the file offset and the CRC of the current section.
private struct SequentialFile {
    let io: any FileIO
    let fd: Int32
    let path: String
    var buffer: [UInt8] = []
    var offset = 0
    var crc: UInt32 = 0

    init(io: any FileIO, fd: Int32, path: String) {
        self.io = io
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(SextantError) {
        crc = CRC32C.checksum(bytes, seed: crc)
        offset += bytes.count
        if buffer.count + bytes.count > (1 << 20) { try drain() }
        if bytes.count >= (1 << 20) {
            try io.write(fd, bytes, path: path)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    mutating func write(_ bytes: [UInt8]) throws(SextantError) {
        try bytes.withBytes { (b) throws(SextantError) in try write(b) }
    }

    mutating func write<T: FixedWidthInteger>(_ v: T) throws(SextantError) {
        try withBytes(of: v.littleEndian) { (b) throws(SextantError) in try write(b) }
    }

    mutating func align() throws(SextantError) {
        let r = offset % SegmentFile.alignment
        if r != 0 { try write([UInt8](repeating: 0, count: SegmentFile.alignment - r)) }
    }

    mutating func drain() throws(SextantError) {
        guard !buffer.isEmpty else { return }
        try buffer.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: path) }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Writes an immutable segment file: to a temp name, fsync, rename, fsync of the directory.
package enum SegmentWriter {
    package struct Entry {
        var kind: SectionKind
        var offset: Int
        var length: Int
        var crc: UInt32
    }

    /// - Returns: the file size in bytes.
    @discardableResult
    package static func write(
        io: any FileIO, path: String, segmentID: UInt64, dimension: Int, metric: Metric, maxSeq: UInt64,
        source: some SegmentRowSource
    ) throws(SextantError) -> Int {
        try io.createAtomically(path) { (fd, tmp) throws(SextantError) -> Int in
            var f = SequentialFile(io: io, fd: fd, path: tmp)
            let n = source.rowCount

            var header = ByteWriter(capacity: SegmentFile.headerSize)
            header.raw(SegmentFile.magic)
            header.u32(SegmentFile.version)
            header.u32(0)
            header.u32(UInt32(dimension))
            header.u8(metric.code)
            header.zeros(3)
            header.u64(UInt64(n))
            header.u64(segmentID)
            header.u64(maxSeq)
            header.zeros(SegmentFile.headerSize - 4 - header.bytes.count)
            header.u32(CRC32C.checksum(header.bytes))
            try f.write(header.bytes)

            var entries: [Entry] = []
            func section(_ kind: SectionKind, _ body: (inout SequentialFile) throws(SextantError) -> Void) throws(SextantError) {
                try f.align()
                let start = f.offset
                f.crc = 0
                try body(&f)
                entries.append(Entry(kind: kind, offset: start, length: f.offset - start, crc: f.crc))
            }

            try section(.vectors) { (f) throws(SextantError) in
                let step = max(1, (32 << 20) / max(1, dimension * 4))
                for row in 0..<n {
                    try f.write(UnsafeRawBufferPointer(try source.vector(row)))
                    if row % step == step - 1 { source.releasePages() }
                }
                source.releasePages()
            }
            try section(.inverseNorms) { (f) throws(SextantError) in
                var chunk: [Float] = []
                chunk.reserveCapacity(4096)
                for row in 0..<n {
                    chunk.append(try source.inverseNorm(row))
                    if chunk.count == 4096 || row == n - 1 {
                        try chunk.withBytes { (b) throws(SextantError) in try f.write(b) }
                        chunk.removeAll(keepingCapacity: true)
                    }
                }
            }

            // Keys: blob plus sorted order and Bloom filter, built from an in-memory copy of the keys
            // (ids are short; the vectors, which are not, are streamed).
            var keyOffsets = [UInt64](repeating: 0, count: n + 1)
            var keyBytes: [UInt8] = []
            var hashes = [UInt64](repeating: 0, count: n)
            for row in 0..<n {
                let k = try source.key(row)
                keyBytes.append(contentsOf: k)
                hashes[row] = keyHash(k)
                keyOffsets[row + 1] = UInt64(keyBytes.count)
            }
            try section(.keys) { (f) throws(SextantError) in try writeBlob(&f, keyBytes, keyOffsets) }

            var order = [UInt32](unsafeUninitializedCapacity: n) { buf, count in
                for i in 0..<n { buf[i] = UInt32(i) }
                count = n
            }
            keyBytes.withUnsafeBytes { kb in
                order.sort { a, b in
                    let ka = UnsafeRawBufferPointer(rebasing: kb[Int(keyOffsets[Int(a)])..<Int(keyOffsets[Int(a) + 1])])
                    let kb2 = UnsafeRawBufferPointer(rebasing: kb[Int(keyOffsets[Int(b)])..<Int(keyOffsets[Int(b) + 1])])
                    return compareKeys(ka, kb2) < 0
                }
            }
            try section(.keyOrder) { (f) throws(SextantError) in
                try order.withBytes { (b) throws(SextantError) in try f.write(b) }
            }
            keyBytes = []

            let blocks = BlockedBloom.blockCount(forKeys: n)
            var bloom = [UInt64](repeating: 0, count: blocks * BlockedBloom.blockBits / 64)
            for h in hashes {
                BlockedBloom.positions(h, blocks: blocks) { bit in bloom[bit >> 6] |= 1 << UInt64(bit & 63) }
            }
            try section(.bloom) { (f) throws(SextantError) in
                try f.write(UInt32(blocks))
                try f.write(UInt32(BlockedBloom.probes))
                try f.write([UInt8](repeating: 0, count: 56))
                try bloom.withBytes { (b) throws(SextantError) in try f.write(b) }
            }

            try section(.metadata) { (f) throws(SextantError) in
                var offsets = [UInt64](repeating: 0, count: n + 1)
                var total = 0
                for row in 0..<n {
                    let m = try source.metadata(row)
                    try f.write(m)
                    total += m.count
                    offsets[row + 1] = UInt64(total)
                }
                try finishBlob(&f, total, offsets)
            }

            var presence = Bitmap(count: n)
            try section(.documents) { (f) throws(SextantError) in
                var offsets = [UInt64](repeating: 0, count: n + 1)
                var total = 0
                for row in 0..<n {
                    if let d = try source.document(row) {
                        presence.insert(row)
                        try f.write(d)
                        total += d.count
                    }
                    offsets[row + 1] = UInt64(total)
                }
                try finishBlob(&f, total, offsets)
            }
            try section(.documentPresence) { (f) throws(SextantError) in
                try presence.words.withBytes { (b) throws(SextantError) in try f.write(b) }
            }

            // Section table, then the footer.
            try f.align()
            let tableOffset = f.offset
            var table = ByteWriter(capacity: entries.count * SegmentFile.tableEntrySize)
            for e in entries {
                table.u32(e.kind.rawValue)
                table.u32(0)
                table.u64(UInt64(e.offset))
                table.u64(UInt64(e.length))
                table.u32(e.crc)
                table.u32(0)
            }
            try f.write(table.bytes)
            var footer = ByteWriter(capacity: SegmentFile.footerSize)
            footer.u64(UInt64(tableOffset))
            footer.u32(UInt32(entries.count))
            footer.u32(CRC32C.checksum(table.bytes))
            footer.u32(SegmentFile.version)
            footer.u32(0)
            footer.raw(SegmentFile.footerMagic)
            try f.write(footer.bytes)
            try f.drain()
            return f.offset
        }
    }

    private static func writeBlob(_ f: inout SequentialFile, _ bytes: [UInt8], _ offsets: [UInt64]) throws(SextantError) {
        try f.write(bytes)
        try finishBlob(&f, bytes.count, offsets)
    }

    /// A blob is `data ‖ zero pad to 8 ‖ offsets:u64[rowCount + 1]`; row i is data[offsets[i]..<offsets[i+1]].
    private static func finishBlob(_ f: inout SequentialFile, _ dataLength: Int, _ offsets: [UInt64]) throws(SextantError) {
        let pad = (8 - dataLength % 8) % 8
        if pad > 0 { try f.write([UInt8](repeating: 0, count: pad)) }
        try offsets.withBytes { (b) throws(SextantError) in try f.write(b) }
    }
}

/// Three-way comparison of key bytes (memcmp, then length).
@inline(__always)
package func compareKeys(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return Int(c) }
    }
    return a.count - b.count
}
