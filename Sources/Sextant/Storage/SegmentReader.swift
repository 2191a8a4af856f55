// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An open, memory-mapped, immutable segment file.
///
/// Opening reads only the header, footer and section table (and checks their checksums); nothing is
/// copied into the heap. Each section's CRC32C is verified the first time it is used (or all at once
/// by ``verifyAll()``), so corrupt bytes are reported, never returned as data.
package final class Segment: @unchecked Sendable {  // immutable after init, except the atomic `verified` mask
    package let id: UInt64
    package let path: String
    package let dimension: Int
    package let metric: Metric
    package let rowCount: Int
    package let maxSeq: UInt64
    package let fileSize: Int
    private let io: any FileIO
    private let map: UnsafeRawBufferPointer
    private let sections: [SectionKind: (offset: Int, length: Int, crc: UInt32)]
    private let verified = Atomic<UInt32>(0)
    private let bloomBlocks: Int

    package init(io: any FileIO, path: String, expectedID: UInt64) throws(SextantError) {
        self.io = io
        self.path = path
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        guard size >= SegmentFile.headerSize + SegmentFile.footerSize else {
            throw SextantError(.corrupt, "\(path): offset 0: segment file too short (\(size) bytes)")
        }
        let map = try io.mapReadOnly(fd, length: size, path: path)
        var ok = false
        defer { if !ok { io.unmap(map) } }

        let header = UnsafeRawBufferPointer(rebasing: map[0..<SegmentFile.headerSize])
        guard Array(header[0..<8]) == SegmentFile.magic else {
            throw SextantError(.corrupt, "\(path): offset 0: not a Sextant segment (bad magic)")
        }
        let version = header.u32(at: 8)
        guard version == SegmentFile.version else {
            throw SextantError(.unsupportedVersion, "\(path): segment format version \(version) is not supported (this build reads version \(SegmentFile.version))")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: header[0..<60])) == header.u32(at: 60) else {
            throw SextantError(.corrupt, "\(path): offset 0: segment header checksum mismatch")
        }
        dimension = Int(header.u32(at: 16))
        guard dimension >= 1 else { throw SextantError(.corrupt, "\(path): offset 16: dimension 0") }
        guard let metric = Metric(code: header[20]) else {
            throw SextantError(.corrupt, "\(path): offset 20: unknown metric code \(header[20])")
        }
        self.metric = metric
        // Sizes from the file are clamped, never trapped on, and bounded by the file size before any product.
        rowCount = Int(clamping: header.u64(at: 24))
        guard rowCount <= size / (dimension * 4 + 4) else {
            throw SextantError(.corrupt, "\(path): offset 24: \(rowCount) rows of dimension \(dimension) cannot fit in \(size) bytes")
        }
        id = header.u64(at: 32)
        maxSeq = header.u64(at: 40)
        guard id == expectedID else {
            throw SextantError(.corrupt, "\(path): segment id \(id) does not match the manifest's \(expectedID)")
        }

        let footerAt = size - SegmentFile.footerSize
        let footer = UnsafeRawBufferPointer(rebasing: map[footerAt..<size])
        guard Array(footer[24..<32]) == SegmentFile.footerMagic else {
            throw SextantError(.corrupt, "\(path): offset \(footerAt): bad footer magic (file truncated?)")
        }
        let tableOffset = Int(clamping: footer.u64(at: 0))
        let entryCount = Int(footer.u32(at: 8))
        let tableLength = entryCount * SegmentFile.tableEntrySize
        guard tableOffset >= SegmentFile.headerSize, tableOffset <= footerAt, tableLength <= footerAt - tableOffset else {
            throw SextantError(.corrupt, "\(path): offset \(footerAt): section table out of bounds")
        }
        let table = UnsafeRawBufferPointer(rebasing: map[tableOffset..<tableOffset + tableLength])
        guard CRC32C.checksum(table) == footer.u32(at: 12) else {
            throw SextantError(.corrupt, "\(path): offset \(tableOffset): section table checksum mismatch")
        }
        var sections: [SectionKind: (offset: Int, length: Int, crc: UInt32)] = [:]
        for i in 0..<entryCount {
            let e = i * SegmentFile.tableEntrySize
            let off = Int(clamping: table.u64(at: e + 8))
            let len = Int(clamping: table.u64(at: e + 16))
            guard off >= SegmentFile.headerSize, off <= tableOffset, len <= tableOffset - off else {
                throw SextantError(.corrupt, "\(path): offset \(tableOffset + e): section \(i) out of bounds")
            }
            // Unknown section kinds from a newer minor format are skipped.
            if let kind = SectionKind(rawValue: table.u32(at: e)) {
                sections[kind] = (off, len, table.u32(at: e + 24))
            }
        }
        // Structural checks, so later accesses cannot run out of the mapping.
        func need(_ kind: SectionKind, _ length: Int?) throws(SextantError) {
            guard let s = sections[kind] else { throw SextantError(.corrupt, "\(path): section \(kind.name) missing") }
            if let length, s.length != length {
                throw SextantError(.corrupt, "\(path): offset \(s.offset): section \(kind.name) has \(s.length) bytes, expected \(length)")
            }
        }
        try need(.vectors, rowCount * dimension * 4)
        try need(.inverseNorms, rowCount * 4)
        try need(.keyOrder, rowCount * 4)
        try need(.documentPresence, (rowCount + 63) / 64 * 8)
        for kind in [SectionKind.keys, .metadata, .documents] {
            try need(kind, nil)
            guard sections[kind]!.length >= (rowCount + 1) * 8 else {
                throw SextantError(.corrupt, "\(path): offset \(sections[kind]!.offset): section \(kind.name) too short")
            }
        }
        try need(.bloom, nil)
        let bloom = sections[.bloom]!
        guard bloom.length >= 64 else { throw SextantError(.corrupt, "\(path): bloom section too short") }
        let blocks = Int(map.u32(at: bloom.offset))
        guard blocks >= 1, bloom.length == 64 + blocks * 64 else {
            throw SextantError(.corrupt, "\(path): offset \(bloom.offset): bloom section size mismatch")
        }
        bloomBlocks = blocks
        self.sections = sections
        self.map = map
        self.fileSize = size
        ok = true
    }

    deinit { io.unmap(map) }

    /// The bytes of a section, verified against its checksum on first use.
    package func section(_ kind: SectionKind) throws(SextantError) -> UnsafeRawBufferPointer {
        let s = sections[kind]!
        let bytes = UnsafeRawBufferPointer(rebasing: map[s.offset..<s.offset + s.length])
        let bit = UInt32(1) << kind.rawValue
        if verified.load(ordering: .acquiring) & bit == 0 {
            guard CRC32C.checksum(bytes) == s.crc else {
                throw SextantError(.corrupt, "\(path): offset \(s.offset): section \(kind.name) checksum mismatch (\(s.length) bytes)")
            }
            _ = verified.bitwiseOr(bit, ordering: .releasing)
        }
        return bytes
    }

    /// Checks every section's checksum now. With `releasingPages`, in 64 MiB steps that give the pages back
    /// as they are checked, so a streaming pass (export, merge) over a large segment keeps its resident
    /// memory flat instead of holding the whole file.
    package func verifyAll(releasingPages: Bool = false) throws(SextantError) {
        for kind in sections.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            if releasingPages { try verifyStreaming(kind) } else { _ = try section(kind) }
        }
    }

    private func verifyStreaming(_ kind: SectionKind) throws(SextantError) {
        let bit = UInt32(1) << kind.rawValue
        if verified.load(ordering: .acquiring) & bit != 0 { return }
        let s = sections[kind]!
        var crc: UInt32 = 0
        var at = s.offset
        while at < s.offset + s.length {
            let part = UnsafeRawBufferPointer(rebasing: map[at..<min(s.offset + s.length, at + (64 << 20))])
            crc = CRC32C.checksum(part, seed: crc)
            releasePages(part)
            at += part.count
        }
        guard crc == s.crc else {
            throw SextantError(.corrupt, "\(path): offset \(s.offset): section \(kind.name) checksum mismatch (\(s.length) bytes)")
        }
        _ = verified.bitwiseOr(bit, ordering: .releasing)
    }

    package func vectors() throws(SextantError) -> UnsafePointer<Float> {
        let b = try section(.vectors)
        return b.baseAddress.map { $0.assumingMemoryBound(to: Float.self) } ?? UnsafePointer(bitPattern: 64)!
    }

    /// Lets the kernel drop this process's resident pages of `bytes` (a part of the mapping already read):
    /// a streaming pass over a large segment then keeps its resident memory flat. The data stays in the
    /// page cache; a later access faults it back in. Advisory: failures are ignored.
    package func releasePages(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + bytes.count) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }

    /// Gives back every resident page of the mapping (see ``releasePages(_:)``).
    package func releaseAllPages() { releasePages(map) }

    package func inverseNorms() throws(SextantError) -> UnsafePointer<Float> {
        let b = try section(.inverseNorms)
        return b.baseAddress.map { $0.assumingMemoryBound(to: Float.self) } ?? UnsafePointer(bitPattern: 64)!
    }

    /// Row `i` of a blob section.
    private func blobItem(_ blob: UnsafeRawBufferPointer, _ kind: SectionKind, _ i: Int) throws(SextantError) -> UnsafeRawBufferPointer {
        let offsetsAt = blob.count - (rowCount + 1) * 8
        let a = Int(clamping: blob.u64(at: offsetsAt + i * 8))
        let b = Int(clamping: blob.u64(at: offsetsAt + (i + 1) * 8))
        guard a <= b, b <= offsetsAt else {
            throw SextantError(.corrupt, "\(path): section \(kind.name): bad offsets for row \(i)")
        }
        return UnsafeRawBufferPointer(rebasing: blob[a..<b])
    }

    package func key(_ row: Int) throws(SextantError) -> UnsafeRawBufferPointer {
        try blobItem(try section(.keys), .keys, row)
    }

    package func recordID(_ row: Int) throws(SextantError) -> RecordID {
        guard let id = RecordID(key: try key(row)) else {
            throw SextantError(.corrupt, "\(path): section keys: invalid key at row \(row)")
        }
        return id
    }

    package func metadata(_ row: Int) throws(SextantError) -> UnsafeRawBufferPointer {
        try blobItem(try section(.metadata), .metadata, row)
    }

    package func document(_ row: Int) throws(SextantError) -> UnsafeRawBufferPointer? {
        let presence = try section(.documentPresence)
        let word = presence.u64(at: (row >> 6) * 8)
        guard word & (1 << UInt64(row & 63)) != 0 else { return nil }
        return try blobItem(try section(.documents), .documents, row)
    }

    /// Row at position `i` of the key order.
    package func orderedRow(_ i: Int) throws(SextantError) -> Int {
        let order = try section(.keyOrder)
        let row = Int(order.u32(at: i * 4))
        guard row < rowCount else { throw SextantError(.corrupt, "\(path): section keyOrder: row \(row) out of range") }
        return row
    }

    /// First position in key order whose key is greater than (or, when `inclusive`, equal to) `key`.
    package func lowerBound(_ key: UnsafeRawBufferPointer, inclusive: Bool) throws(SextantError) -> Int {
        var lo = 0
        var hi = rowCount
        while lo < hi {
            let mid = (lo + hi) / 2
            let c = compareKeys(try self.key(try orderedRow(mid)), key)
            if c < 0 || (!inclusive && c == 0) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The row holding `key`, if any (the Bloom filter answers most misses without a search).
    package func find(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(SextantError) -> Int? {
        let bloom = try section(.bloom)
        let words = bloom.baseAddress! + 64
        var maybe = true
        BlockedBloom.positions(hash, blocks: bloomBlocks) { bit in
            if maybe && words.loadUnaligned(fromByteOffset: (bit >> 6) * 8, as: UInt64.self) & (1 << UInt64(bit & 63)) == 0 {
                maybe = false
            }
        }
        guard maybe else { return nil }
        let pos = try lowerBound(key, inclusive: true)
        guard pos < rowCount else { return nil }
        let row = try orderedRow(pos)
        return compareKeys(try self.key(row), key) == 0 ? row : nil
    }
}
