// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Sextant

#if canImport(Glibc)
    import Glibc
#endif

/// Per-process scratch space on tmpfs when there is one (readers take paths; a file per input would be
/// slow on a disk), removed at exit.
enum Scratch {
    static let root: String = {
        var base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        let dir = base + "/sextant-fuzz-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Scratch.root) }
        return dir
    }()

    static let io = HeapMappedFileIO()

    /// Writes `bytes` to the scratch file `name` (reused by every input) and returns its path.
    static func file(_ name: String, _ bytes: UnsafeRawBufferPointer) -> String {
        let path = root + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }

    static func file(_ name: String, _ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { file(name, $0) } }

    /// An empty scratch directory `name`.
    static func directory(_ name: String) -> String {
        let path = root + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The process's database (opened once; its collections and snapshots are dropped after each input).
    static let database: Database = {
        var config = Configuration()
        config.backgroundWork = false
        config.fileIO = io
        return try! Database.open(at: directory("db"), configuration: config)
    }()

    /// Drops whatever an input left in ``database``.
    static func resetDatabase() {
        let db = database
        for name in db.collectionNames() { try? db.dropCollection(name) }
        for s in (try? db.snapshots()) ?? [] { try? db.deleteSnapshot(s.name) }
    }
}

/// Several files in one input: `(nameLength:u8 | name | size:u32 | bytes)*`; a cut-short tail is ignored.
/// Names are relative paths; one that leaves the directory (absolute, or with a `..` part) is skipped, so
/// the harness itself never writes elsewhere.
enum FileBundle {
    static func split(_ data: UnsafeRawBufferPointer) -> [(name: String, bytes: [UInt8])] {
        var out: [(String, [UInt8])] = []
        var at = 0
        while at < data.count {
            let n = Int(data[at])
            guard at + 1 + n + 4 <= data.count else { break }
            let name = String(decoding: data[(at + 1)..<(at + 1 + n)], as: UTF8.self)
            at += 1 + n
            let size = Int(data.u32(at: at))
            at += 4
            let end = min(data.count, at + size)
            let bytes = Array(data[at..<end])
            at = end
            if name.isEmpty || name.hasPrefix("/") || name.split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
                || name.utf8.contains(0)
            {
                continue
            }
            out.append((name, bytes))
        }
        return out
    }

    static func join(_ files: [(name: String, bytes: [UInt8])]) -> [UInt8] {
        var w = ByteWriter()
        for f in files {
            w.u8(UInt8(f.name.utf8.count))
            w.raw(Array(f.name.utf8))
            w.u32(UInt32(f.bytes.count))
            w.raw(f.bytes)
        }
        return w.bytes
    }

    /// Writes the files of `data` under a fresh scratch directory `name`; returns its path.
    static func materialize(_ data: UnsafeRawBufferPointer, as name: String, fixup: ((String, inout [UInt8]) -> Void)? = nil) -> String {
        let dir = Scratch.directory(name)
        for var f in split(data) {
            fixup?(f.name, &f.bytes)
            let path = dir + "/" + f.name
            let parent = (path as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            if FileManager.default.fileExists(atPath: path) { continue }  // "a" and "a/b": the first wins
            _ = FileManager.default.createFile(atPath: path, contents: Data(f.bytes))
        }
        return dir
    }
}

extension [UInt8] {
    func u32(at o: Int) -> UInt32 { withUnsafeBytes { $0.u32(at: o) } }
    func u64(at o: Int) -> UInt64 { withUnsafeBytes { $0.u64(at: o) } }
    mutating func put(_ v: UInt32, at o: Int) { Swift.withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { self[o + i] = $0[i] } } }
    mutating func put(_ v: UInt64, at o: Int) { Swift.withUnsafeBytes(of: v.littleEndian) { for i in 0..<8 { self[o + i] = $0[i] } } }
    func crc(_ range: Range<Int>) -> UInt32 { withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) } }
}
