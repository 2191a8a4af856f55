// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels
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
    /// Calls `body` with the row's key, metadata and document (nil when the row has none), valid only
    /// during the call: a source holding them in Swift arrays cannot lend their bytes any longer.
    func withPayload<R>(
        _ row: Int,
        _ body: (_ key: UnsafeRawBufferPointer, _ metadata: UnsafeRawBufferPointer, _ document: UnsafeRawBufferPointer?) throws(SextantError) -> R
    ) throws(SextantError) -> R
    /// Called as the writer streams through the rows: a source reading mapped files may give their
    /// resident pages back (they stay in the page cache).
    func releasePages()
}

extension SegmentRowSource {
    package func releasePages() {}
}

/// Buffered sequential writer that tracks the file offset and the CRC of the current section. Every
/// 8 MiB written it asks the kernel to start writing back what came before (``sx_start_writeback``), so a
/// large file streams to the disk while it is built and its final fsync is short.
package struct SequentialFile {
    let io: any FileIO
    let fd: Int32
    let path: String
    var buffer: [UInt8] = []
    var offset = 0
    var crc: UInt32 = 0
    private var writtenBack = 0
    private static let writeBehind = 8 << 20

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
            startWriteback()
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

    mutating func align(to alignment: Int = SegmentFile.alignment) throws(SextantError) {
        let r = offset % alignment
        if r != 0 { try write([UInt8](repeating: 0, count: alignment - r)) }
    }

    mutating func drain() throws(SextantError) {
        guard !buffer.isEmpty else { return }
        try buffer.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: path) }
        buffer.removeAll(keepingCapacity: true)
        startWriteback()
    }

    /// Advisory: an error here only means the final fsync does more of the work.
    private mutating func startWriteback() {
        let flushed = offset - buffer.count
        if flushed - writtenBack >= Self.writeBehind {
            _ = sx_start_writeback(fd, Int64(writtenBack), Int64(flushed - writtenBack))
            writtenBack = flushed
        }
    }
}

/// A blob section's bytes as they are appended: in memory up to `limit`, then in a side file next to the
/// segment being built, so a builder's memory does not grow with its metadata and documents.
private struct SpillBlob {
    let io: any FileIO
    let sidePath: String
    var memory: [UInt8] = []
    var offsets: [UInt64] = [0]
    var total = 0
    var fd: Int32 = -1
    static let limit = 4 << 20

    init(io: any FileIO, sidePath: String) {
        self.io = io
        self.sidePath = sidePath
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(SextantError) {
        memory.append(contentsOf: bytes)
        total += bytes.count
        offsets.append(UInt64(total))
        if memory.count >= Self.limit { try spill() }
    }

    mutating func appendEmpty() { offsets.append(UInt64(total)) }

    private mutating func spill() throws(SextantError) {
        if fd < 0 { fd = try io.open(sidePath, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600) }
        try memory.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: sidePath) }
        memory.removeAll(keepingCapacity: true)
    }

    /// Writes `data ‖ zero pad to 8 ‖ offsets:u64[rows + 1]` (see ``SegmentWriter``) to `f`.
    mutating func emit(into f: inout SequentialFile) throws(SextantError) {
        if fd >= 0 {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            var at = 0
            while true {
                let got = try io.pread(fd, into: buffer, at: Int64(at), path: sidePath)
                if got == 0 { break }
                try f.write(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                at += got
            }
            guard at + memory.count == total else {
                throw SextantError(.io, "\(sidePath): read back \(at) of \(total - memory.count) bytes")
            }
        }
        try f.write(memory)
        let pad = (8 - total % 8) % 8
        if pad > 0 { try f.write([UInt8](repeating: 0, count: pad)) }
        try offsets.withBytes { (b) throws(SextantError) in try f.write(b) }
        discard()
    }

    mutating func discard() {
        if fd >= 0 {
            io.close(fd)
            try? io.unlink(sidePath)
            fd = -1
        }
        memory = []
    }
}

/// Builds an immutable segment file from rows appended one at a time: vectors stream straight to the
/// file; keys, inverse norms and row offsets (a few dozen bytes a row) stay in memory; metadata and
/// documents go to ``SpillBlob``s. ``finish(maxSeq:)`` writes the remaining sections and the footer,
/// fsyncs, renames the temp file into place and fsyncs the directory; until then nothing is visible
/// under `path`, and ``abandon()`` (or deinit) removes the temp files.
package final class SegmentBuilder: @unchecked Sendable {  // used by one thread at a time (a loader hands it to its sealing thread)
    package let path: String
    package let segmentID: UInt64
    package let dimension: Int
    let metric: Metric
    let io: any FileIO
    private let tmp: String
    private var fd: Int32
    private var f: SequentialFile
    private var entries: [SegmentWriter.Entry] = []
    private var vectorsStart = 0
    package private(set) var rowCount = 0
    private var inverseNorms: [Float] = []
    private var keyBytes: [UInt8] = []
    private var keyOffsets: [UInt64] = [0]
    private var metadata: SpillBlob
    private var documents: SpillBlob
    private var presence: [UInt64] = []
    private var done = false
    /// Called by ``finish(maxSeq:)`` with every key, in key order, before the file is completed: a loader
    /// checks there that no other segment holds the id.
    package var keyCheck: ((UnsafeRawBufferPointer) throws(SextantError) -> Void)?

    package init(io: any FileIO, path: String, segmentID: UInt64, dimension: Int, metric: Metric) throws(SextantError) {
        self.io = io
        self.path = path
        self.segmentID = segmentID
        self.dimension = dimension
        self.metric = metric
        tmp = path + ".tmp"
        fd = try io.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        f = SequentialFile(io: io, fd: fd, path: tmp)
        metadata = SpillBlob(io: io, sidePath: path + ".metadata.tmp")
        documents = SpillBlob(io: io, sidePath: path + ".documents.tmp")
        do throws(SextantError) {
            // The header is written last (it holds the row count); reserve its place.
            try f.write([UInt8](repeating: 0, count: SegmentFile.headerSize))
            try f.align()
            vectorsStart = f.offset
            f.crc = 0
        } catch {
            abandon()
            throw error
        }
    }

    deinit { if !done { abandon() } }

    /// Bytes written so far (vectors, mostly): what a caller sizing segments compares with its limit.
    package var bytesWritten: Int { f.offset + metadata.total + documents.total + keyBytes.count }

    /// Appends one row. `inverseNorm` is 1 / ‖vector‖ (0 for a zero vector); `document` nil means none.
    package func append(
        vector: UnsafeBufferPointer<Float>, inverseNorm: Float, key: UnsafeRawBufferPointer, metadata meta: UnsafeRawBufferPointer,
        document: UnsafeRawBufferPointer?
    ) throws(SextantError) {
        precondition(!done && vector.count == dimension)
        try f.write(UnsafeRawBufferPointer(vector))
        inverseNorms.append(inverseNorm)
        keyBytes.append(contentsOf: key)
        keyOffsets.append(UInt64(keyBytes.count))
        try metadata.append(meta)
        if rowCount % 64 == 0 { presence.append(0) }
        if let document {
            presence[rowCount >> 6] |= 1 << UInt64(rowCount & 63)
            try documents.append(document)
        } else {
            documents.appendEmpty()
        }
        rowCount += 1
    }

    /// The key of an appended row.
    package func key(_ row: Int) -> [UInt8] { Array(keyBytes[Int(keyOffsets[row])..<Int(keyOffsets[row + 1])]) }

    /// Writes the rest of the file and publishes it under `path`. Returns the file size in bytes.
    @discardableResult
    package func finish(maxSeq: UInt64) throws(SextantError) -> Int {
        precondition(!done)
        do throws(SextantError) {
            let size = try writeRest(maxSeq: maxSeq)
            try io.fsync(fd, path: tmp)
            io.close(fd)
            fd = -1
            try io.rename(tmp, to: path)
            done = true
            try io.syncDirectory(parentDirectory(of: path))
            return size
        } catch {
            if !done { abandon() }
            throw error
        }
    }

    /// Removes the temp files (an unfinished build leaves nothing behind).
    package func abandon() {
        done = true
        if fd >= 0 {
            io.close(fd)
            fd = -1
        }
        try? io.unlink(tmp)
        metadata.discard()
        documents.discard()
    }

    private func writeRest(maxSeq: UInt64) throws(SextantError) -> Int {
        let n = rowCount
        entries.append(.init(kind: .vectors, offset: vectorsStart, length: f.offset - vectorsStart, crc: f.crc))
        func section(_ kind: SectionKind, _ body: (inout SequentialFile) throws(SextantError) -> Void) throws(SextantError) {
            try f.align()
            let start = f.offset
            f.crc = 0
            try body(&f)
            entries.append(SegmentWriter.Entry(kind: kind, offset: start, length: f.offset - start, crc: f.crc))
        }
        try section(.inverseNorms) { (f) throws(SextantError) in try inverseNorms.withBytes { (b) throws(SextantError) in try f.write(b) } }
        inverseNorms = []

        // Keys: blob plus sorted order and Bloom filter.
        try section(.keys) { (f) throws(SextantError) in
            try f.write(keyBytes)
            let pad = (8 - keyBytes.count % 8) % 8
            if pad > 0 { try f.write([UInt8](repeating: 0, count: pad)) }
            try keyOffsets.withBytes { (b) throws(SextantError) in try f.write(b) }
        }
        var order = [UInt32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = UInt32(i) }
            count = n
        }
        let offsets = keyOffsets
        keyBytes.withUnsafeBytes { kb in
            order.sort { a, b in
                let ka = UnsafeRawBufferPointer(rebasing: kb[Int(offsets[Int(a)])..<Int(offsets[Int(a) + 1])])
                let kb2 = UnsafeRawBufferPointer(rebasing: kb[Int(offsets[Int(b)])..<Int(offsets[Int(b) + 1])])
                return compareKeys(ka, kb2) < 0
            }
        }
        // Two rows with one key would make the segment answer for an id twice.
        try keyBytes.withBytes { (kb) throws(SextantError) in
            if let keyCheck {
                for i in 0..<n { try keyCheck(UnsafeRawBufferPointer(rebasing: kb[Int(offsets[Int(order[i])])..<Int(offsets[Int(order[i]) + 1])])) }
            }
            for i in 1..<max(1, n) {
                let a = Int(order[i - 1]), b = Int(order[i])
                let ka = UnsafeRawBufferPointer(rebasing: kb[Int(offsets[a])..<Int(offsets[a + 1])])
                let kb2 = UnsafeRawBufferPointer(rebasing: kb[Int(offsets[b])..<Int(offsets[b + 1])])
                if compareKeys(ka, kb2) == 0 {
                    throw SextantError(.corrupt, "record \(RecordID(key: ka).map { "\($0)" } ?? "?") appears twice (rows \(min(a, b)) and \(max(a, b)))")
                }
            }
        }
        try section(.keyOrder) { (f) throws(SextantError) in try order.withBytes { (b) throws(SextantError) in try f.write(b) } }
        order = []

        let blocks = BlockedBloom.blockCount(forKeys: n)
        var bloom = [UInt64](repeating: 0, count: blocks * BlockedBloom.blockBits / 64)
        keyBytes.withUnsafeBytes { kb in
            for row in 0..<n {
                let h = keyHash(UnsafeRawBufferPointer(rebasing: kb[Int(offsets[row])..<Int(offsets[row + 1])]))
                BlockedBloom.positions(h, blocks: blocks) { bit in bloom[bit >> 6] |= 1 << UInt64(bit & 63) }
            }
        }
        keyBytes = []
        keyOffsets = []
        try section(.bloom) { (f) throws(SextantError) in
            try f.write(UInt32(blocks))
            try f.write(UInt32(BlockedBloom.probes))
            try f.write([UInt8](repeating: 0, count: 56))
            try bloom.withBytes { (b) throws(SextantError) in try f.write(b) }
        }
        try section(.metadata) { (f) throws(SextantError) in try metadata.emit(into: &f) }
        try section(.documents) { (f) throws(SextantError) in try documents.emit(into: &f) }
        presence.append(contentsOf: repeatElement(0, count: (n + 63) / 64 - presence.count))
        try section(.documentPresence) { (f) throws(SextantError) in try presence.withBytes { (b) throws(SextantError) in try f.write(b) } }

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
        try io.seek(fd, to: 0, path: tmp)
        try header.bytes.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
        return f.offset
    }
}

/// Writes an immutable segment file from a row source: to a temp name, fsync, rename, fsync of the directory.
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
        let builder = try SegmentBuilder(io: io, path: path, segmentID: segmentID, dimension: dimension, metric: metric)
        let step = max(1, (32 << 20) / max(1, dimension * 4))
        for row in 0..<source.rowCount {
            let vector = try source.vector(row), inverseNorm = try source.inverseNorm(row)
            try source.withPayload(row) { (key, metadata, document) throws(SextantError) in
                try builder.append(vector: vector, inverseNorm: inverseNorm, key: key, metadata: metadata, document: document)
            }
            if row % step == step - 1 { source.releasePages() }
        }
        source.releasePages()
        return try builder.finish(maxSeq: maxSeq)
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
