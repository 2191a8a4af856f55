// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#endif

/// Replays one WAL file.
package enum WALReader {
    package struct Outcome {
        /// Offset just past the last whole, checksum-valid record.
        package var validEnd: Int64
        /// Set when a torn or checksum-failing record was found at the tail.
        package var tornTail: Bool
        package var lastSeq: UInt64
    }

    /// Calls `body` for each batch in order. A damaged record that is the last thing in the file (nothing
    /// but zeros follows it) is a crash artifact when `isLastFile`; anywhere else it is corruption, reported
    /// with the file and offset.
    package static func replay(
        io: any FileIO, path: String, isLastFile: Bool, previousSeq: UInt64,
        _ body: (UInt64, [Mutation]) throws(SextantError) -> Void
    ) throws(SextantError) -> Outcome {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        let map = try io.mapReadOnly(fd, length: size, path: path)
        defer { io.unmap(map) }

        if size < WALFile.headerSize {
            if isLastFile { return Outcome(validEnd: 0, tornTail: true, lastSeq: 0) }
            throw SextantError(.corrupt, "\(path): offset 0: log header truncated (\(size) bytes)")
        }
        let header = UnsafeRawBufferPointer(rebasing: map[0..<WALFile.headerSize])
        guard Array(header[0..<8]) == WALFile.magic else {
            throw SextantError(.corrupt, "\(path): offset 0: not a Sextant log file (bad magic)")
        }
        let version = header.u32(at: 8)
        guard version == WALFile.version else {
            throw SextantError(.unsupportedVersion, "\(path): log format version \(version) is not supported (this build reads version \(WALFile.version))")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: header[0..<24])) == header.u32(at: 24) else {
            throw SextantError(.corrupt, "\(path): offset 0: log header checksum mismatch")
        }

        var offset = WALFile.headerSize
        var lastSeq: UInt64 = previousSeq
        while offset < size {
            let problem: String
            if size - offset < WALRecord.headerSize {
                problem = "record header truncated"
            } else {
                let length = Int(map.u32(at: offset))
                let crc = map.u32(at: offset + 4)
                let end = offset + WALRecord.headerSize + length
                if length > WALRecord.maxPayload || end > size {
                    problem = "record length \(length) runs past the end of the file"
                } else if CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[(offset + 8)..<end])) != crc {
                    problem = "record checksum mismatch"
                } else {
                    let seq = map.u64(at: offset + 8)
                    let type = map[offset + 16]
                    guard type == WALRecord.batchType else {
                        throw SextantError(.corrupt, "\(path): offset \(offset): unknown record type \(type)")
                    }
                    let what = "\(path): record at offset \(offset)"
                    let payload = UnsafeRawBufferPointer(rebasing: map[(offset + WALRecord.headerSize)..<end])
                    try body(seq, try WALRecord.decodeBatch(payload, what: what))
                    lastSeq = seq
                    offset = end
                    continue
                }
            }
            // A damaged record. It is a torn tail only if it is at the end of the last file: whatever follows
            // it must be zeros (file systems may extend a file before the data lands).
            let restIsZero = isTailGarbage(map, from: offset, previousSeq: lastSeq)
            if isLastFile && restIsZero {
                return Outcome(validEnd: Int64(offset), tornTail: true, lastSeq: lastSeq)
            }
            throw SextantError(.corrupt, "\(path): offset \(offset): \(problem)")
        }
        return Outcome(validEnd: Int64(offset), tornTail: false, lastSeq: lastSeq)
    }

    /// True when nothing valid follows `offset`: a torn append leaves one partial record (and possibly zero
    /// fill), never a valid record after it. Sequence numbers are consecutive, so a later intact record —
    /// which would prove this is mid-log corruption, e.g. a flipped length byte — carries `previousSeq + 1`
    /// or `previousSeq + 2`; look for one anywhere after `offset`.
    private static func isTailGarbage(_ map: UnsafeRawBufferPointer, from offset: Int, previousSeq: UInt64) -> Bool {
        let size = map.count
        var p = offset + 1
        while p + WALRecord.headerSize <= size {
            let seq = map.u64(at: p + 8)
            if seq == previousSeq &+ 1 || seq == previousSeq &+ 2 {
                let length = Int(map.u32(at: p))
                let end = p + WALRecord.headerSize + length
                if length <= WALRecord.maxPayload, end <= size,
                    CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[(p + 8)..<end])) == map.u32(at: p + 4)
                {
                    return false
                }
            }
            p += 1
        }
        return true
    }
}
