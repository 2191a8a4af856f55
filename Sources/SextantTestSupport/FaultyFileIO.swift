// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Sextant
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A ``FileIO`` that fails on request: the Nth write or fsync (counted from when the fault is armed)
/// fails with an errno, or a write is cut short and then fails — the way a full disk behaves.
package final class FaultyFileIO: FileIO, @unchecked Sendable {  // fault state guarded by `faults`
    package enum Fault: Sendable {
        /// Fail the `after`-th next write with `errno` (e.g. ENOSPC), writing nothing.
        case failWrite(after: Int, errno: Int32)
        /// Write half of the `after`-th next write's bytes, then fail with `errno`.
        case shortWrite(after: Int, errno: Int32)
        /// Fail the `after`-th next fsync with `errno` (e.g. EIO).
        case failSync(after: Int, errno: Int32)
        /// Every write to a path containing `pathContains` fails with ENOSPC until disarmed.
        case diskFull(pathContains: String)
        /// The file system is mounted read-only: every operation that would change it fails with EROFS.
        case readOnlyFileSystem
    }
    private let base = PosixFileIO()
    private let faults = Locked<[(Fault, Int)]>([])
    package let triggered = Atomic<Int>(0)

    package init() {}

    package func arm(_ fault: Fault) { faults.withLock { $0.append((fault, 0)) } }
    package func disarm() { faults.withLock { $0.removeAll() } }

    private enum Decision { case pass, fail(Int32), short(Int32) }

    private func decide(write: Bool, path: String) -> Decision {
        faults.withLock { list in
            for i in list.indices {
                switch list[i].0 {
                case .failWrite(let after, let e) where write:
                    list[i].1 += 1
                    if list[i].1 == after { return .fail(e) }
                case .shortWrite(let after, let e) where write:
                    list[i].1 += 1
                    if list[i].1 == after { return .short(e) }
                case .failSync(let after, let e) where !write:
                    list[i].1 += 1
                    if list[i].1 == after { return .fail(e) }
                case .diskFull(let p) where write && path.contains(p):
                    return .fail(ENOSPC)
                default: break
                }
            }
            return .pass
        }
    }

    /// Whether the read-only file system fault is armed.
    private var readOnly: Bool {
        faults.withLock { list in list.contains { if case .readOnlyFileSystem = $0.0 { return true } else { return false } } }
    }

    private func refuseIfReadOnly(_ op: String, _ path: String) throws(SextantError) {
        if readOnly {
            _ = triggered.add(1, ordering: .relaxed)
            throw .posix(op, path, errno: EROFS)
        }
    }

    package func open(_ path: String, flags: Int32, mode: UInt32) throws(SextantError) -> Int32 {
        if flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) != 0 { try refuseIfReadOnly("open", path) }
        return try base.open(path, flags: flags, mode: mode)
    }
    package func close(_ fd: Int32) { base.close(fd) }
    package func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SextantError) {
        switch decide(write: true, path: path) {
        case .pass: try base.write(fd, bytes, path: path)
        case .fail(let e):
            _ = triggered.add(1, ordering: .relaxed)
            throw .posix("write", path, errno: e)
        case .short(let e):
            _ = triggered.add(1, ordering: .relaxed)
            try base.write(fd, UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count / 2)]), path: path)
            throw .posix("write", path, errno: e)
        }
    }
    package func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(SextantError) -> Int {
        try base.pread(fd, into: buffer, at: offset, path: path)
    }
    package func fsync(_ fd: Int32, path: String) throws(SextantError) {
        if case .fail(let e) = decide(write: false, path: path) {
            _ = triggered.add(1, ordering: .relaxed)
            throw .posix("fsync", path, errno: e)
        }
        try base.fsync(fd, path: path)
    }
    package func truncate(_ fd: Int32, to size: Int64, path: String) throws(SextantError) {
        try refuseIfReadOnly("truncate", path)
        try base.truncate(fd, to: size, path: path)
    }
    package func seek(_ fd: Int32, to offset: Int64, path: String) throws(SextantError) { try base.seek(fd, to: offset, path: path) }
    package func size(_ fd: Int32, path: String) throws(SextantError) -> Int64 { try base.size(fd, path: path) }
    package func rename(_ from: String, to: String) throws(SextantError) {
        try refuseIfReadOnly("rename", to)
        try base.rename(from, to: to)
    }
    package func unlink(_ path: String) throws(SextantError) {
        try refuseIfReadOnly("unlink", path)
        try base.unlink(path)
    }
    package func link(_ from: String, to: String) throws(SextantError) {
        try refuseIfReadOnly("link", to)
        try base.link(from, to: to)
    }
    package func makeDirectory(_ path: String) throws(SextantError) {
        try refuseIfReadOnly("mkdir", path)
        try base.makeDirectory(path)
    }
    package func removeDirectory(_ path: String) throws(SextantError) {
        try refuseIfReadOnly("rmdir", path)
        try base.removeDirectory(path)
    }
    package func syncDirectory(_ path: String) throws(SextantError) { try base.syncDirectory(path) }
    package func listDirectory(_ path: String) throws(SextantError) -> [String] { try base.listDirectory(path) }
    package func exists(_ path: String) -> Bool { base.exists(path) }
    package func isDirectory(_ path: String) -> Bool { base.isDirectory(path) }
    package func mapReadOnly(_ fd: Int32, length: Int, path: String) throws(SextantError) -> UnsafeRawBufferPointer {
        try base.mapReadOnly(fd, length: length, path: path)
    }
    package func unmap(_ region: UnsafeRawBufferPointer) { base.unmap(region) }
    /// What ``availableBytes(_:)`` reports instead of the real figure (nil: the real one).
    package let reportedAvailableBytes = Locked<Int64?>(nil)

    package func availableBytes(_ path: String) -> Int64? {
        reportedAvailableBytes.withLock { $0 } ?? base.availableBytes(path)
    }
    /// How many operations the armed faults have failed so far.
    package var failures: Int { triggered.load(ordering: .relaxed) }
}

extension Configuration {
    /// A configuration whose file I/O goes through `io`.
    package static func withFileIO(_ io: some FileIO, _ body: (inout Configuration) -> Void = { _ in }) -> Configuration {
        var c = Configuration()
        c.fileIO = io
        body(&c)
        return c
    }
}
