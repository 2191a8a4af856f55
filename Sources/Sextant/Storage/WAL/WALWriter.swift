// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// WAL file header (32 bytes): magic "SEXTWAL\0", version:u32, reserved:u32, fileNumber:u64, crc:u32, pad:u32.
package enum WALFile {
    package static let magic: [UInt8] = Array("SEXTWAL\0".utf8)
    /// Version 2 adds `syncedSeq` to every record header (see ``WALRecord``); version 1 files are still read.
    package static let version: UInt32 = 2
    package static let headerSize = 32

    package static func name(_ number: UInt64) -> String {
        let hex = String(number, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".log"
    }

    package static func number(fromName name: String) -> UInt64? {
        guard name.hasSuffix(".log"), name.count == 20 else { return nil }
        return UInt64(name.dropLast(4), radix: 16)
    }

    package static func header(fileNumber: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: headerSize)
        w.raw(magic)
        w.u32(version)
        w.u32(0)
        w.u64(fileNumber)
        w.u32(CRC32C.checksum(w.bytes))
        w.u32(0)
        return w.bytes
    }
}

/// Appends framed batches to one WAL file and makes them durable.
///
/// Only the collection's commit leader appends (see ``CommitQueue``), so appends never interleave.
/// `sync` may be called from the background syncer at the same time; a lock keeps the two apart.
/// A failed append truncates the file back to the last whole record (and fsyncs the truncation) so the log
/// never holds garbage followed by good records; if even that fails, the writer refuses further writes.
///
/// The writer knows which sequence numbers are durable (``durableSeq``): the leader writes that number into
/// every record it frames, which is what lets recovery tell a torn tail from damage.
package final class WALWriter: @unchecked Sendable {  // all mutable state is guarded by `lock`
    package let path: String
    package let fileNumber: UInt64
    private let io: any FileIO
    private let fd: Int32
    private struct State {
        var end: Int64
        var synced: Int64
        /// The last sequence number appended, and the last one covered by a completed fsync.
        var appendedSeq: UInt64
        var durableSeq: UInt64
        var failure: SextantError?
        var closed = false
    }
    private let lock: Locked<State>

    /// Creates a new, empty log file (header only), durable before it returns.
    ///
    /// - Parameter durableSeq: the last sequence number already durable in earlier files (every record before
    ///   this file has been fsynced).
    package init(io: any FileIO, directory: String, fileNumber: UInt64, durableSeq: UInt64) throws(SextantError) {
        lock = Locked(State(end: 0, synced: 0, appendedSeq: durableSeq, durableSeq: durableSeq))
        self.io = io
        self.fileNumber = fileNumber
        self.path = directory + "/" + WALFile.name(fileNumber)
        fd = try io.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, mode: 0o644)
        do throws(SextantError) {
            let header = WALFile.header(fileNumber: fileNumber)
            try header.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: path) }
            try io.fsync(fd, path: path)
            try io.syncDirectory(directory)
        } catch {
            io.close(fd)
            try? io.unlink(path)
            throw error
        }
        lock.withLock { $0.end = Int64(WALFile.headerSize); $0.synced = Int64(WALFile.headerSize) }
    }

    deinit { io.close(fd) }

    /// Bytes written so far (header included).
    package var size: Int64 { lock.withLock { $0.end } }

    /// The last sequence number whose record is durable (covered by a completed fsync).
    package var durableSeq: UInt64 { lock.withLock { $0.durableSeq } }

    /// Appends already-framed records, the last of which has sequence number `lastSeq`. On failure nothing of
    /// them remains in the file: it is truncated back, and the truncation made durable, so that a later
    /// power cut cannot bring the failed bytes back in front of the records appended after them.
    package func append(_ bytes: [UInt8], lastSeq: UInt64) throws(SextantError) {
        try lock.withLock { (s) throws(SextantError) in
            if let f = s.failure { throw f }
            if s.closed { throw SextantError(.closed, "\(path): log is closed") }
            do throws(SextantError) {
                try bytes.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: path) }
                s.end += Int64(bytes.count)
                s.appendedSeq = lastSeq
            } catch {
                do throws(SextantError) {
                    try io.truncate(fd, to: s.end, path: path)
                    try io.fsync(fd, path: path)
                    s.synced = s.end
                    s.durableSeq = s.appendedSeq
                } catch {
                    s.failure = SextantError(
                        .readOnly, "\(path): could not undo a failed write (\(error.message)); reopen the database",
                        cause: error)
                }
                throw error
            }
        }
    }

    /// fsyncs everything appended so far. After a failed fsync the kernel may have dropped dirty pages,
    /// so the writer refuses further writes: the database must be reopened (recovery re-reads the log).
    package func sync() throws(SextantError) {
        try lock.withLock { (s) throws(SextantError) in
            if let f = s.failure { throw f }
            if s.synced == s.end { return }
            let target = s.end
            let targetSeq = s.appendedSeq
            do throws(SextantError) {
                try io.fsync(fd, path: path)
            } catch {
                s.failure = SextantError(
                    .readOnly, "\(path): fsync failed (\(error.message)); writes are refused until the database is reopened",
                    cause: error)
                throw error
            }
            s.synced = target
            s.durableSeq = targetSeq
        }
    }

    package var hasUnsyncedData: Bool { lock.withLock { $0.synced != $0.end } }

    /// Closes the log cleanly: fsyncs what was appended, then appends and fsyncs a durability mark (see
    /// ``WALRecord/markType``) when batches were appended, so that recovery can tell damage to the last batch
    /// from a torn write. Further appends fail with ``SextantError/Code/closed``.
    package func closeCleanly() throws(SextantError) {
        try sync()
        try lock.withLock { (s) throws(SextantError) in
            if s.closed { return }
            s.closed = true
            if let f = s.failure { throw f }
            guard s.end > Int64(WALFile.headerSize) else { return }
            var out = ByteWriter(capacity: WALRecord.headerSize)
            WALRecord.encodeMark(seq: s.appendedSeq, into: &out)
            try out.bytes.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: path) }
            s.end += Int64(out.bytes.count)
            try io.fsync(fd, path: path)
            s.synced = s.end
        }
    }
}
