// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Sextant

#if canImport(Glibc)
    import Glibc
#endif

/// ``PosixFileIO``, except that a "mapping" is a heap copy of exactly the file's bytes. AddressSanitizer does
/// not see a read past the end of a section inside an `mmap`ed region (nor past the file's end within its last
/// page); in a heap block of the file's size, a read past the end hits a red zone and is reported.
///
/// It also confines the database to the scratch directory: a path outside it (a crafted name with `..`
/// parts, say) is a bug, and traps.
struct HeapMappedFileIO: FileIO {
    let posix = PosixFileIO()

    /// Traps unless `path`, with `.` and `..` resolved by name, is inside ``Scratch/root``.
    func confined(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        let resolved = "/" + parts.joined(separator: "/")
        check(resolved == Scratch.root || resolved.hasPrefix(Scratch.root + "/"), "file access outside the scratch directory: \(path)")
        return path
    }

    func mapReadOnly(_ fd: Int32, length: Int, path: String) throws(SextantError) -> UnsafeRawBufferPointer {
        guard length > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        var done = 0
        while done < length {
            let got: Int
            do { got = try posix.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: p[done...]), at: Int64(done), path: path) } catch {
                p.deallocate()
                throw error
            }
            if got == 0 { break }
            done += got
        }
        if done < length { p[done...].initializeMemory(as: UInt8.self, repeating: 0) }  // the file shrank: zeros, as a mapping reads
        return UnsafeRawBufferPointer(p)
    }

    func unmap(_ region: UnsafeRawBufferPointer) {
        if region.baseAddress != nil, region.count > 0 { region.deallocate() }
    }

    func open(_ path: String, flags: Int32, mode: UInt32) throws(SextantError) -> Int32 { try posix.open(confined(path), flags: flags, mode: mode) }
    func close(_ fd: Int32) { posix.close(fd) }
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SextantError) { try posix.write(fd, bytes, path: path) }
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(SextantError) -> Int {
        try posix.pread(fd, into: buffer, at: offset, path: path)
    }
    func fsync(_ fd: Int32, path: String) throws(SextantError) { try posix.fsync(fd, path: path) }
    func truncate(_ fd: Int32, to size: Int64, path: String) throws(SextantError) { try posix.truncate(fd, to: size, path: path) }
    func seek(_ fd: Int32, to offset: Int64, path: String) throws(SextantError) { try posix.seek(fd, to: offset, path: path) }
    func size(_ fd: Int32, path: String) throws(SextantError) -> Int64 { try posix.size(fd, path: path) }
    func rename(_ from: String, to: String) throws(SextantError) { try posix.rename(confined(from), to: confined(to)) }
    func unlink(_ path: String) throws(SextantError) { try posix.unlink(confined(path)) }
    func link(_ from: String, to: String) throws(SextantError) { try posix.link(confined(from), to: confined(to)) }
    func makeDirectory(_ path: String) throws(SextantError) { try posix.makeDirectory(confined(path)) }
    func removeDirectory(_ path: String) throws(SextantError) { try posix.removeDirectory(confined(path)) }
    func syncDirectory(_ path: String) throws(SextantError) { try posix.syncDirectory(path) }
    func listDirectory(_ path: String) throws(SextantError) -> [String] { try posix.listDirectory(confined(path)) }
    func exists(_ path: String) -> Bool { posix.exists(confined(path)) }
    func isDirectory(_ path: String) -> Bool { posix.isDirectory(confined(path)) }
}
