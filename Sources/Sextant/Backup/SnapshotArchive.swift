// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// A snapshot as one file, to move to another machine:
///
/// ```
/// archive := header entry* footer
/// header  := magic "SEXTSARC" | version:u32 (=1) | reserved:u32                       (16 bytes)
/// entry   := pathLength:u32 | path (UTF-8) | size:u64 | bytes[size] | crc:u32 (CRC-32C of bytes)
/// footer  := magic "SEXTSEND" | entries:u64 | totalBytes:u64 | crc:u32 (CRC-32C of the entries' crcs)
/// ```
/// The first entry is `SNAPSHOT` (the snapshot's description); the others are its files. Written and
/// read in 1 MiB chunks, so memory stays flat whatever the size.
enum SnapshotArchive {
    static let magic: [UInt8] = Array("SEXTSARC".utf8)
    static let footerMagic: [UInt8] = Array("SEXTSEND".utf8)
    static let version: UInt32 = 1
    static let chunk = 1 << 20
    /// What an encrypted archive's key is bound to (see ``EncryptedContainer``).
    static let encryptedContext = "snapshot-archive"
}

extension Database {
    /// Writes snapshot `name` to `file` as a single archive (written to a temporary name, fsynced, then
    /// renamed, so `file` is either complete or absent).
    /// - Parameters:
    ///   - encryptionKey: when given, the whole archive is written inside one encrypted container
    ///     (AES-256-GCM in 64 KiB chunks; Docs/FileFormat.md, "Encrypted container").
    ///   - progress: called with (bytes written, total bytes) after each chunk; throw to cancel.
    public func archiveSnapshot(
        _ name: String, to file: String, encryptionKey: EncryptionKey? = nil, progress: (Int, Int) throws -> Void = { _, _ in }
    ) throws(SextantError) {
        try Self.validateSnapshotName(name)
        let dir = snapshotsDirectory + "/" + name
        let io = core.io
        guard io.exists(dir + "/SNAPSHOT") else { throw SextantError(.notFound, "no snapshot named '\(name)'") }
        let description = try io.readFile(dir + "/SNAPSHOT")
        let manifest: SnapshotManifest
        do { manifest = try JSONDecoder().decode(SnapshotManifest.self, from: Data(description)) } catch {
            throw SextantError(.corrupt, "\(dir)/SNAPSHOT: not a valid snapshot description: \(error)")
        }
        let total = description.count + manifest.files.reduce(0) { $0 + $1.bytes }
        var written = 0
        try io.createAtomically(file) { (fd, tmp) throws(SextantError) in
            let encryptor = encryptionKey.map { key in
                EncryptingWriter(key: key, context: SnapshotArchive.encryptedContext) { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
            }
            func write(_ b: UnsafeRawBufferPointer) throws(SextantError) {
                if let encryptor { try encryptor.write(b) } else { try io.write(fd, b, path: tmp) }
            }
            var header = ByteWriter(capacity: 16)
            header.raw(SnapshotArchive.magic)
            header.u32(SnapshotArchive.version)
            header.u32(0)
            try header.bytes.withBytes { (b) throws(SextantError) in try write(b) }
            var crcs = ByteWriter()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SnapshotArchive.chunk, alignment: 64)
            defer { buffer.deallocate() }
            // Entry 0 is the description (from memory), then each file (in chunks).
            let sources: [(path: String, size: Int, file: String?)] =
                [("SNAPSHOT", description.count, nil)] + manifest.files.map { ($0.path, $0.bytes, dir + "/" + $0.path) }
            for source in sources {
                var h = ByteWriter()
                let p = Array(source.path.utf8)
                h.u32(UInt32(p.count))
                h.raw(p)
                h.u64(UInt64(source.size))
                try h.bytes.withBytes { (b) throws(SextantError) in try write(b) }
                var crc: UInt32 = 0
                if let path = source.file {
                    let src = try io.open(path, flags: O_RDONLY, mode: 0)
                    defer { io.close(src) }
                    var offset = 0
                    while offset < source.size {
                        let want = min(SnapshotArchive.chunk, source.size - offset)
                        let got = try io.pread(src, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: Int64(offset), path: path)
                        guard got == want else { throw SextantError(.io, "\(path): short read at offset \(offset) (did the file change?)") }
                        let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                        crc = CRC32C.checksum(slice, seed: crc)
                        try write(slice)
                        offset += got
                        written += got
                        do { try progress(written, total) } catch {
                            throw SextantError(.cancelled, "archiving snapshot '\(name)' was cancelled")
                        }
                    }
                } else {
                    crc = CRC32C.checksum(description)
                    try description.withBytes { (b) throws(SextantError) in try write(b) }
                    written += description.count
                }
                var t = ByteWriter(capacity: 4)
                t.u32(crc)
                crcs.u32(crc)
                try t.bytes.withBytes { (b) throws(SextantError) in try write(b) }
            }
            var footer = ByteWriter(capacity: 32)
            footer.raw(SnapshotArchive.footerMagic)
            footer.u64(UInt64(manifest.files.count + 1))
            footer.u64(UInt64(total))
            footer.u32(CRC32C.checksum(crcs.bytes))
            try footer.bytes.withBytes { (b) throws(SextantError) in try write(b) }
            try encryptor?.finish()
        }
    }

    /// Reads a snapshot archive into this database's snapshots (checking every checksum before the
    /// snapshot appears), under its own name or `as`. Then ``restoreSnapshot(_:collections:as:)`` restores it.
    ///
    /// An encrypted archive (``archiveSnapshot(_:to:encryptionKey:progress:)``) needs `key`: it is first
    /// decrypted whole into the database directory, every chunk authenticated, and only then read.
    /// - Throws: ``SextantError/Code/corrupt`` naming the archive, the entry and the offset of damage, or
    ///   the chunk that failed authentication; ``SextantError/Code/invalidArgument`` when the archive is
    ///   encrypted and `key` is nil or wrong, or a key is given and the archive is not encrypted.
    @discardableResult
    public func importSnapshotArchive(
        _ file: String, as newName: String? = nil, key: EncryptionKey? = nil, progress: (Int, Int) throws -> Void = { _, _ in }
    ) throws(SextantError) -> SnapshotInfo {
        let io = core.io
        guard io.exists(file) else { throw SextantError(.notFound, "\(file): no such snapshot archive") }
        guard EncryptedContainer.isEncrypted(io: io, path: file) else {
            if key != nil {
                // A plain archive is refused as such; anything else is a container whose magic was damaged.
                guard try Self.startsWith(SnapshotArchive.magic, io, file) else {
                    throw SextantError(.corrupt, "\(file): not an encrypted Sextant file (bad magic)")
                }
                throw SextantError(.invalidArgument, EncryptedContainer.notEncrypted(file, "snapshot archive"))
            }
            return try importPlainSnapshotArchive(file, as: newName, progress: progress)
        }
        guard let key else { throw SextantError(.invalidArgument, EncryptedContainer.keyRequired(file, "snapshot archive")) }
        try io.makeDirectory(snapshotsDirectory)
        // A `.tmp` name: an open after a crash removes it.
        let plain = snapshotsDirectory + "/import-\(getpid())-\(hex16(UInt64.random(in: 1...UInt64.max))).decrypted.tmp"
        defer { try? io.unlink(plain) }
        let size = try fileSize(io, file)
        try EncryptedFile.copyDecrypting(io: io, file, to: plain, key: key, context: SnapshotArchive.encryptedContext, salt: nil) {
            (n) throws(SextantError) in
            do { try progress(n, size) } catch { throw SextantError(.cancelled, "importing the snapshot archive was cancelled") }
        }
        do {
            return try importPlainSnapshotArchive(plain, as: newName, progress: progress)
        } catch {
            throw SextantError(error.code, error.message.replacingOccurrences(of: plain, with: file + " (decrypted)"))
        }
    }

    private static func startsWith(_ magic: [UInt8], _ io: any FileIO, _ file: String) throws(SextantError) -> Bool {
        let fd = try io.open(file, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        var b = [UInt8](repeating: 0, count: magic.count)
        let read: Result<Int, SextantError> = b.withUnsafeMutableBytes { p in Result { () throws(SextantError) in try io.pread(fd, into: p, at: 0, path: file) } }
        return try read.get() == magic.count && b == magic
    }

    /// Reads an unencrypted snapshot archive (see ``importSnapshotArchive(_:as:key:progress:)``).
    /// - Throws: ``SextantError/Code/corrupt`` naming the archive, the entry and the offset of damage.
    func importPlainSnapshotArchive(_ file: String, as newName: String? = nil, progress: (Int, Int) throws -> Void = { _, _ in }) throws(SextantError) -> SnapshotInfo {
        let io = core.io
        let fd = try io.open(file, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: file))
        var offset = 0
        func read(_ n: Int, _ what: String) throws(SextantError) -> [UInt8] {
            guard n >= 0, offset + n <= size else { throw SextantError(.corrupt, "\(file): offset \(offset): truncated archive (\(what))") }
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, n), alignment: 8)
            defer { p.deallocate() }
            let got = try io.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: p[0..<n]), at: Int64(offset), path: file)
            guard got == n else { throw SextantError(.io, "\(file): short read at offset \(offset)") }
            offset += n
            return Array(p[0..<n])
        }
        func u32(_ b: [UInt8]) -> UInt32 { b.withUnsafeBytes { $0.u32(at: 0) } }
        func u64(_ b: [UInt8]) -> UInt64 { b.withUnsafeBytes { $0.u64(at: 0) } }
        let header = try read(16, "header")
        guard Array(header[0..<8]) == SnapshotArchive.magic else { throw SextantError(.corrupt, "\(file): offset 0: not a Sextant snapshot archive") }
        let v = u32(Array(header[8..<12]))
        guard v == SnapshotArchive.version else {
            throw SextantError(.unsupportedVersion, "\(file): archive version \(v) is not supported (this build reads \(SnapshotArchive.version))")
        }
        try io.makeDirectory(snapshotsDirectory)
        var tmp = snapshotsDirectory + "/import-\(getpid())-\(Int(Date().timeIntervalSince1970 * 1000)).tmp"
        try io.makeDirectory(tmp)
        var ok = false
        defer { if !ok { try? io.removeTree(tmp) } }
        var crcs = ByteWriter()
        var description: SnapshotManifest?
        var entries = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SnapshotArchive.chunk, alignment: 64)
        defer { buffer.deallocate() }
        while offset < size - 28 {
            let at = offset
            let pathLength = Int(u32(try read(4, "entry")))
            guard pathLength > 0, pathLength < 4096 else { throw SextantError(.corrupt, "\(file): offset \(at): bad entry") }
            let path = String(decoding: try read(pathLength, "entry path"), as: UTF8.self)
            guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
                throw SextantError(.corrupt, "\(file): offset \(at): entry path '\(path)' leaves the snapshot")
            }
            // Compared as UInt64: a crafted size above Int.max must be refused, not trap in the conversion.
            let declared = u64(try read(8, "entry size"))
            guard declared <= UInt64(max(0, size - offset - 4)) else {
                throw SextantError(.corrupt, "\(file): offset \(at): entry '\(path)' runs past the end")
            }
            let length = Int(declared)
            // Copy into place, checksumming as we go.
            let target = tmp + "/" + path
            var dir = ""
            for part in path.split(separator: "/").dropLast() {
                dir += "/" + part
                if !io.exists(tmp + dir) { try io.makeDirectory(tmp + dir) }
            }
            var crc: UInt32 = 0
            var whole: [UInt8] = []
            try io.createAtomically(target) { (out, t) throws(SextantError) in
                var done = 0
                while done < length {
                    let want = min(SnapshotArchive.chunk, length - done)
                    let got = try io.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: Int64(offset), path: file)
                    guard got == want else { throw SextantError(.io, "\(file): short read at offset \(offset)") }
                    let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                    crc = CRC32C.checksum(slice, seed: crc)
                    try io.write(out, slice, path: t)
                    if path == "SNAPSHOT" { whole.append(contentsOf: slice) }
                    offset += got
                    done += got
                    do { try progress(offset, size) } catch {
                        throw SextantError(.cancelled, "importing the snapshot archive was cancelled")
                    }
                }
            }
            let stored = u32(try read(4, "entry checksum"))
            guard stored == crc else { throw SextantError(.corrupt, "\(file): offset \(at): entry '\(path)' checksum mismatch") }
            crcs.u32(crc)
            entries += 1
            if path == "SNAPSHOT" {
                do { description = try JSONDecoder().decode(SnapshotManifest.self, from: Data(whole)) } catch {
                    throw SextantError(.corrupt, "\(file): the snapshot description is not valid: \(error)")
                }
            }
        }
        let footer = try read(28, "footer")
        guard Array(footer[0..<8]) == SnapshotArchive.footerMagic, u64(Array(footer[8..<16])) == UInt64(entries),
            u32(Array(footer[24..<28])) == CRC32C.checksum(crcs.bytes)
        else { throw SextantError(.corrupt, "\(file): offset \(size - 28): bad footer (truncated or damaged archive)") }
        guard var m = description else { throw SextantError(.corrupt, "\(file): the archive has no snapshot description") }
        let name = newName ?? m.name
        try Self.validateSnapshotName(name)
        let final = snapshotsDirectory + "/" + name
        if io.exists(final) { throw SextantError(.alreadyExists, "snapshot '\(name)' already exists") }
        if name != m.name {
            m.name = name
            try io.writeFileAtomically(tmp + "/SNAPSHOT", try Self.encode(m))
        }
        try verifySnapshotFiles(m, in: tmp)
        try io.rename(tmp, to: final)
        try io.syncDirectory(snapshotsDirectory)
        tmp = final
        ok = true
        return Self.info(m)
    }
}
