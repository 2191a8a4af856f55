// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The syscall seam: every byte Sextant reads or writes goes through a `FileIO`.
///
/// Production code uses ``PosixFileIO``. Tests substitute a fault-injecting implementation (short writes,
/// failed fsync, ENOSPC) to prove that a failed operation leaves the database consistent — the
/// technique SQLite calls an alternative VFS.
package protocol FileIO: Sendable {
    func open(_ path: String, flags: Int32, mode: UInt32) throws(SextantError) -> Int32
    func close(_ fd: Int32)
    /// Writes all of `bytes` at the current position (looping over short writes).
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SextantError)
    /// Reads up to `buffer.count` bytes at `offset`; returns the count read (0 at end of file).
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(SextantError) -> Int
    func fsync(_ fd: Int32, path: String) throws(SextantError)
    func truncate(_ fd: Int32, to size: Int64, path: String) throws(SextantError)
    func seek(_ fd: Int32, to offset: Int64, path: String) throws(SextantError)
    func size(_ fd: Int32, path: String) throws(SextantError) -> Int64
    func rename(_ from: String, to: String) throws(SextantError)
    func unlink(_ path: String) throws(SextantError)
    func link(_ from: String, to: String) throws(SextantError)
    func makeDirectory(_ path: String) throws(SextantError)
    func removeDirectory(_ path: String) throws(SextantError)
    /// fsyncs a directory so that renames and creations inside it are durable.
    func syncDirectory(_ path: String) throws(SextantError)
    func listDirectory(_ path: String) throws(SextantError) -> [String]
    func exists(_ path: String) -> Bool
    func isDirectory(_ path: String) -> Bool
    /// Maps `length` bytes of `fd` read-only. The mapping outlives the descriptor.
    func mapReadOnly(_ fd: Int32, length: Int, path: String) throws(SextantError) -> UnsafeRawBufferPointer
    func unmap(_ region: UnsafeRawBufferPointer)
    /// Bytes an unprivileged process can still write on the file system holding `path` (nil: unknown).
    func availableBytes(_ path: String) -> Int64?
}

extension FileIO {
    package func availableBytes(_ path: String) -> Int64? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        return Int64(st.f_bavail) * Int64(st.f_frsize)
    }
}

extension SextantError {
    /// Builds an error from `errno`: ENOSPC/EDQUOT become ``Code/diskFull``, everything else ``Code/io``.
    package static func posix(_ op: String, _ path: String, errno e: Int32 = errno) -> SextantError {
        let text = String(cString: strerror(e))
        if e == ENOSPC || e == EDQUOT {
            return SextantError(.diskFull, "\(op) \(path): disk full (\(text))")
        }
        return SextantError(.io, "\(op) \(path): \(text) (errno \(e))")
    }
}

/// ``FileIO`` over the POSIX system calls.
package struct PosixFileIO: FileIO {
    package init() {}

    package func open(_ path: String, flags: Int32, mode: UInt32) throws(SextantError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode_t(mode))
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            if errno == ENOENT { throw SextantError(.notFound, "open \(path): no such file or directory") }
            throw .posix("open", path)
        }
    }

    package func close(_ fd: Int32) { _ = Glibc.close(fd) }

    package func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SextantError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .posix("write", path)
            }
            if n == 0 { throw SextantError(.io, "write \(path): wrote 0 bytes") }
            done += n
        }
    }

    package func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(SextantError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .posix("read", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    package func fsync(_ fd: Int32, path: String) throws(SextantError) {
        while Glibc.fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw .posix("fsync", path)
        }
    }

    package func truncate(_ fd: Int32, to size: Int64, path: String) throws(SextantError) {
        while Glibc.ftruncate(fd, off_t(size)) != 0 {
            if errno == EINTR { continue }
            throw .posix("truncate", path)
        }
    }

    package func seek(_ fd: Int32, to offset: Int64, path: String) throws(SextantError) {
        if lseek(fd, off_t(offset), SEEK_SET) < 0 { throw .posix("seek", path) }
    }

    package func size(_ fd: Int32, path: String) throws(SextantError) -> Int64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw .posix("stat", path) }
        return Int64(st.st_size)
    }

    package func rename(_ from: String, to: String) throws(SextantError) {
        if Glibc.rename(from, to) != 0 { throw .posix("rename \(from) to", to) }
    }

    package func unlink(_ path: String) throws(SextantError) {
        if Glibc.unlink(path) != 0 && errno != ENOENT { throw .posix("unlink", path) }
    }

    package func link(_ from: String, to: String) throws(SextantError) {
        if Glibc.link(from, to) != 0 { throw .posix("link \(from) to", to) }
    }

    package func makeDirectory(_ path: String) throws(SextantError) {
        if Glibc.mkdir(path, 0o755) != 0 && errno != EEXIST { throw .posix("mkdir", path) }
    }

    package func removeDirectory(_ path: String) throws(SextantError) {
        if Glibc.rmdir(path) != 0 && errno != ENOENT { throw .posix("rmdir", path) }
    }

    package func syncDirectory(_ path: String) throws(SextantError) {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    package func listDirectory(_ path: String) throws(SextantError) -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT { throw SextantError(.notFound, "list \(path): no such directory") }
            throw .posix("opendir", path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    package func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    package func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    package func mapReadOnly(_ fd: Int32, length: Int, path: String) throws(SextantError) -> UnsafeRawBufferPointer {
        guard length > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let p = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0)
        if p == MAP_FAILED || p == nil { throw .posix("mmap", path) }
        return UnsafeRawBufferPointer(start: p, count: length)
    }

    package func unmap(_ region: UnsafeRawBufferPointer) {
        if let base = region.baseAddress, region.count > 0 {
            munmap(UnsafeMutableRawPointer(mutating: base), region.count)
        }
    }
}

extension FileIO {
    /// Reads a whole (small) file.
    package func readFile(_ path: String) throws(SextantError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY, mode: 0)
        defer { close(fd) }
        let n = Int(try size(fd, path: path))
        var bytes = [UInt8](repeating: 0, count: n)
        let result: Result<Int, SextantError> = bytes.withUnsafeMutableBytes { buf in
            Result { () throws(SextantError) in try pread(fd, into: buf, at: 0, path: path) }
        }
        let got = try result.get()
        if got != n { throw SextantError(.io, "read \(path): file shrank while reading") }
        return bytes
    }

    /// Creates `path` atomically and durably: `body` writes to a temp file (descriptor and temp path given),
    /// then fsync, rename over `path`, fsync of the directory. On any failure the temp file is removed and
    /// `path` is untouched. Every immutable file Sextant publishes is written this way.
    package func createAtomically<R>(_ path: String, _ body: (Int32, String) throws(SextantError) -> R) throws(SextantError) -> R {
        let tmp = path + ".tmp"
        let fd = try open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        let result: R
        do throws(SextantError) {
            result = try body(fd, tmp)
            try fsync(fd, path: tmp)
        } catch {
            close(fd)
            try? unlink(tmp)
            throw error
        }
        close(fd)
        do throws(SextantError) {
            try rename(tmp, to: path)
        } catch {
            try? unlink(tmp)
            throw error
        }
        try syncDirectory(parentDirectory(of: path))
        return result
    }

    /// Writes `bytes` to `path` atomically and durably (see ``createAtomically(_:_:)``).
    package func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws(SextantError) {
        try createAtomically(path) { (fd, tmp) throws(SextantError) in
            try bytes.withBytes { (buf) throws(SextantError) in try write(fd, buf, path: tmp) }
        }
    }

    /// Copies the first `length` bytes of `from` (all of it when nil) to `to`, atomically and durably, in
    /// 1 MiB chunks. Returns the number of bytes copied.
    @discardableResult
    package func copyFile(_ from: String, to: String, length: Int? = nil) throws(SextantError) -> Int {
        let src = try open(from, flags: O_RDONLY, mode: 0)
        defer { close(src) }
        let n: Int
        if let length { n = length } else { n = Int(try size(src, path: from)) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        try createAtomically(to) { (fd, tmp) throws(SextantError) in
            var offset = 0
            while offset < n {
                let want = min(buffer.count, n - offset)
                let got = try pread(src, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: Int64(offset), path: from)
                guard got > 0 else { throw SextantError(.io, "\(from): ended at offset \(offset) while being copied") }
                try write(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<got]), path: tmp)
                offset += got
            }
        }
        return n
    }

    /// Creates a directory and makes its name durable (an fsync of the parent directory): what is written
    /// inside it survives a power cut only if the directory itself does.
    package func makeDirectoryDurably(_ path: String) throws(SextantError) {
        try makeDirectory(path)
        try syncDirectory(parentDirectory(of: path))
    }

    /// Removes a directory tree (files and subdirectories). Missing paths are not an error.
    package func removeTree(_ path: String) throws(SextantError) {
        guard exists(path) else { return }
        if isDirectory(path) {
            for name in try listDirectory(path) { try removeTree(path + "/" + name) }
            try removeDirectory(path)
        } else {
            try unlink(path)
        }
    }
}

package func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
