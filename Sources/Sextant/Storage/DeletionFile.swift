// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// A persisted deletion bitmap generation for one sealed segment.
///
/// ```
/// file := magic "SEXTDEL\0" version:u32 reserved:u32 segmentID:u64 rowCount:u64 words:u64[⌈rowCount/64⌉] crc:u32
/// crc  := CRC32C(everything before it)
/// ```
/// A new generation is written (temp + fsync + rename) whenever marks must become durable; the manifest
/// names the live generation, so a crash never leaves a half-written bitmap in use.
package enum DeletionFile {
    package static let magic: [UInt8] = Array("SEXTDEL\0".utf8)
    package static let version: UInt32 = 1

    package static func encode(_ bitmap: Bitmap, segmentID: UInt64, rowCount: Int) -> [UInt8] {
        var w = ByteWriter(capacity: 32 + bitmap.words.count * 8 + 4)
        w.raw(magic)
        w.u32(version)
        w.u32(0)
        w.u64(segmentID)
        w.u64(UInt64(rowCount))
        var words = bitmap.words
        let needed = (rowCount + 63) / 64
        if words.count < needed { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
        for i in 0..<needed { w.u64(words[i]) }
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    package static func decode(_ bytes: [UInt8], path: String, segmentID: UInt64, rowCount: Int) throws(SextantError) -> Bitmap {
        let words = (rowCount + 63) / 64
        guard bytes.count == 32 + words * 8 + 4 else {
            throw SextantError(.corrupt, "\(path): deletion file has \(bytes.count) bytes, expected \(32 + words * 8 + 4)")
        }
        return try bytes.withBytes { (b) throws(SextantError) -> Bitmap in
            guard Array(b[0..<8]) == magic else { throw SextantError(.corrupt, "\(path): offset 0: bad deletion-file magic") }
            guard b.u32(at: 8) == version else {
                throw SextantError(.unsupportedVersion, "\(path): deletion file version \(b.u32(at: 8)) is not supported (this build reads version \(version))")
            }
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<(b.count - 4)])) == b.u32(at: b.count - 4) else {
                throw SextantError(.corrupt, "\(path): offset \(b.count - 4): deletion file checksum mismatch")
            }
            guard b.u64(at: 16) == segmentID, Int(clamping: b.u64(at: 24)) == rowCount else {
                throw SextantError(.corrupt, "\(path): deletion file belongs to another segment")
            }
            var ws = [UInt64](repeating: 0, count: words)
            for i in 0..<words { ws[i] = b.u64(at: 32 + i * 8) }
            // Bits past the last row would count as deletions of rows that do not exist (live counts below
            // zero): a writer never sets them.
            if rowCount % 64 != 0, ws[words - 1] >> UInt64(rowCount % 64) != 0 {
                throw SextantError(.corrupt, "\(path): offset \(32 + (words - 1) * 8): deletion marks past the segment's \(rowCount) rows")
            }
            return Bitmap(words: ws, count: rowCount)
        }
    }
}
