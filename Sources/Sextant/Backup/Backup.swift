// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// One backup of a chain.
public struct BackupInfo: Sendable, Hashable {
    public var sequence: Int
    /// "full" or "incremental".
    public var kind: String
    public var createdAt: Double
    public var collections: [String]
    /// Bytes this backup stores itself (an increment: only what changed since its parent).
    public var bytes: Int
    /// Bytes of the whole state it restores (its own files and those it takes from earlier backups).
    public var totalBytes: Int
    /// The ``EncryptionKey/id`` of the key the backup is encrypted with; nil when it is not encrypted.
    public var keyID: String?
}

/// `backup-NNNNNN/BACKUP.json`.
struct BackupManifest: Codable {
    static let formatVersion = 1
    struct FileEntry: Codable {
        var path: String
        var bytes: Int
        var crc32c: UInt32
        /// The backup (sequence) whose directory holds the file.
        var storedIn: Int
        /// Encrypted backups: the salt of the stored file's encryption header, which binds the file to
        /// this (authenticated) description, so no other encrypted file can take its place.
        var salt: String?
    }
    var formatVersion: Int
    var sequence: Int
    var parent: Int?
    var kind: String
    var createdAt: Double
    var collections: [Manifest.CollectionEntry]
    var files: [FileEntry]
    /// Present when the backup is encrypted (then this description is itself encrypted).
    var encryption: EncryptionInfo?

    static let fileName = "BACKUP.json"

    /// What a stored file's key is bound to: its path within the chain directory.
    static func context(_ storedIn: Int, _ path: String) -> String { Database.backupName(storedIn) + "/" + path }
}

extension Database {
    static func backupName(_ sequence: Int) -> String { String(format: "backup-%06d", sequence) }

    /// Backs up collections (all when nil) into `directory`: a full backup, or with `incremental` an
    /// increment that stores only the files published since the previous backup in `directory` (new
    /// segments, new deletion files, the log after the checkpoint) and refers to its ancestors for the
    /// rest. Point-in-time per collection, consistent while writes continue (as a snapshot). A backup
    /// appears only when complete (`backup-N.partial` is renamed at the end).
    ///
    /// With `encryptionKey`, every stored file and `BACKUP.json` are encrypted and authenticated
    /// (AES-256-GCM, see Docs/FileFormat.md, "Encrypted container"). A chain has one key, or none: a
    /// backup into a directory whose backups are encrypted needs their key, and an encrypted backup
    /// cannot join a chain of unencrypted ones (``SextantError/Code/invalidArgument``).
    @discardableResult
    public func backup(
        to directory: String, collections: [String]? = nil, incremental: Bool = false, encryptionKey: EncryptionKey? = nil,
        progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) -> BackupInfo {
        let io = core.io
        if !io.exists(directory) { try io.makeDirectoryDurably(directory) }
        let marker = directory + "/CHAIN"
        if !io.exists(marker) {
            guard try io.listDirectory(directory).isEmpty else {
                throw SextantError(.invalidArgument, "\(directory) is not empty and not a Sextant backup directory (no CHAIN file)")
            }
            try io.writeFileAtomically(marker, Array(#"{"format":"sextant-backup","version":1}"#.utf8) + [0x0A])
        }
        switch (Self.chainIsEncrypted(io, directory), encryptionKey) {
        case (true?, nil):
            throw SextantError(
                .invalidArgument,
                "\(directory) holds encrypted backups; pass their key (--encrypt FILE or SEXTANT_BACKUP_KEY) to add a backup to the chain")
        case (false?, _?):
            throw SextantError(
                .invalidArgument,
                "\(directory) holds unencrypted backups, and an encrypted backup cannot join their chain: back up into a new directory, or leave out the key")
        default: break
        }
        let chain = try Self.loadChain(io, directory, key: encryptionKey)
        let parent = chain.last
        if incremental && parent == nil {
            throw SextantError(.invalidArgument, "\(directory) holds no backup to increment; make a full backup first (without --incremental)")
        }
        let sequence = (parent?.sequence ?? 0) + 1
        let final = directory + "/" + Self.backupName(sequence)
        let partial = final + ".partial"
        try io.removeTree(partial)
        try io.makeDirectoryDurably(partial)
        var ok = false
        defer { if !ok { try? io.removeTree(partial) } }

        // A hard-linked picture of the collections inside the database, then copies out of it.
        let stage = path + "/backup-\(getpid())-\(hex16(UInt64.random(in: 1...UInt64.max))).tmp"
        try io.makeDirectory(stage)
        try io.makeDirectory(stage + "/collections")
        defer { try? io.removeTree(stage) }
        var entries: [Manifest.CollectionEntry] = []
        var linked: [SnapshotManifest.FileEntry] = []
        for name in collections ?? collectionNames() where !name.hasPrefix(Self.stagingPrefix) {
            let (entry, files, _) = try collection(name).linkFilesForSnapshot(into: stage)
            entries.append(entry)
            linked += files
        }
        let previous = Dictionary((parent?.files ?? []).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var done = 0
        var files: [BackupManifest.FileEntry] = []
        for f in linked {
            // Immutable files already in the chain (same name, same size) are referred to, not copied;
            // log files change in place, so they are always copied.
            if incremental, !f.path.contains("/wal/"), let p = previous[f.path], p.bytes == f.bytes {
                files.append(p)
            } else {
                let target = partial + "/" + f.path
                try Self.makeParents(io, of: target, under: partial)
                if let key = encryptionKey {
                    let (crc, salt) = try EncryptedFile.copyEncrypting(
                        io: io, stage + "/" + f.path, to: target, key: key, context: BackupManifest.context(sequence, f.path))
                    files.append(.init(path: f.path, bytes: f.bytes, crc32c: crc, storedIn: sequence, salt: salt))
                } else {
                    let crc = try Self.copyWithChecksum(io, stage + "/" + f.path, to: target)
                    files.append(.init(path: f.path, bytes: f.bytes, crc32c: crc, storedIn: sequence))
                }
            }
            done += f.bytes
            do { try progress(ProgressEvent(phase: "backup", records: 0, totalRecords: nil, bytes: done)) } catch {
                throw SextantError(.cancelled, "the backup was cancelled")
            }
        }
        let manifest = BackupManifest(
            formatVersion: BackupManifest.formatVersion, sequence: sequence, parent: parent?.sequence, kind: incremental ? "incremental" : "full",
            createdAt: Date().timeIntervalSince1970, collections: entries, files: files, encryption: encryptionKey.map(EncryptionInfo.init))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        let json: Data
        do { json = try enc.encode(manifest) } catch { throw SextantError(.io, "could not encode the backup description: \(error)") }
        if let key = encryptionKey {
            try EncryptedFile.write(
                io: io, partial + "/" + BackupManifest.fileName, Array(json), key: key, context: BackupManifest.context(sequence, BackupManifest.fileName))
        } else {
            try io.writeFileAtomically(partial + "/" + BackupManifest.fileName, Array(json))
        }
        try io.syncDirectory(partial)
        try io.rename(partial, to: final)
        try io.syncDirectory(directory)
        ok = true
        return Self.info(manifest)
    }

    /// The backups in `directory`, oldest first. An encrypted chain needs its key (its descriptions are
    /// encrypted too).
    /// - Throws: ``SextantError/Code/invalidArgument`` when the chain is encrypted and `key` is nil or
    ///   wrong, or a key is given and the chain is not encrypted.
    public static func backups(in directory: String, key: EncryptionKey? = nil) throws(SextantError) -> [BackupInfo] {
        try loadChain(PosixFileIO(), directory, key: key).map(info)
    }

    /// Checks a backup directory: every backup's files are present with their sizes and checksums, and
    /// every file an increment refers to exists in the backup that holds it. Returns the problems (each
    /// naming the file), empty when the chain is whole. An encrypted chain needs its key: each file is
    /// then decrypted and authenticated chunk by chunk (a failure names the file and chunk) before its
    /// checksum is compared; a missing or wrong key is reported as the one problem.
    public static func verifyBackup(at directory: String, key: EncryptionKey? = nil) -> (problems: [String], files: Int, bytes: Int) {
        let io = PosixFileIO()
        var problems: [String] = []
        var files = 0, bytes = 0
        let chain: [BackupManifest]
        do { chain = try loadChain(io, directory, key: key) } catch { return ([error.message], 0, 0) }
        if chain.isEmpty { problems.append("\(directory): holds no complete backup") }
        let sequences = Set(chain.map(\.sequence))
        for b in chain {
            if let p = b.parent, !sequences.contains(p) {
                problems.append("\(directory)/\(backupName(b.sequence)): its parent backup \(backupName(p)) is missing: the chain is broken")
            }
            for f in b.files {
                let holder = directory + "/" + backupName(f.storedIn) + "/" + f.path
                if f.storedIn != b.sequence {
                    if !sequences.contains(f.storedIn) || !io.exists(holder) {
                        problems.append("\(holder): missing (backup \(b.sequence) refers to it): the chain is broken")
                    } else if let key, b.encryption != nil {
                        // The file is authenticated when its own backup is checked; here, that it is that file.
                        do {
                            let fd = try io.open(holder, flags: O_RDONLY, mode: 0)
                            defer { io.close(fd) }
                            _ = try DecryptingReader(io: io, fd: fd, path: holder, key: key, context: BackupManifest.context(f.storedIn, f.path), salt: f.salt)
                        } catch {
                            problems.append(error.message + " (backup \(b.sequence) refers to it)")
                        }
                    }
                    continue
                }
                do {
                    let (crc, n) =
                        if let key, b.encryption != nil {
                            try EncryptedFile.copyDecrypting(
                                io: io, holder, to: nil, key: key, context: BackupManifest.context(f.storedIn, f.path), salt: f.salt)
                        } else {
                            try checksum(io, holder)
                        }
                    if n != f.bytes {
                        problems.append("\(holder): \(n) bytes, the backup says \(f.bytes)")
                    } else if crc != f.crc32c {
                        problems.append("\(holder): checksum mismatch (the file is damaged)")
                    }
                    files += 1
                    bytes += n
                } catch {
                    problems.append(error.message)
                }
            }
        }
        return (problems, files, bytes)
    }

    /// Restores the state of backup `at` (default: the latest) of the chain in `directory`: every file
    /// it needs is copied out of the chain and checked against its checksum before anything changes,
    /// then the collections (all of the backup's, or `collections`; with `as`, one under a new name) are
    /// swapped in as with a snapshot.
    ///
    /// An encrypted chain needs `key`: every file is decrypted and authenticated chunk by chunk into the
    /// staging area, so damage or tampering (``SextantError/Code/corrupt``, naming the file and chunk)
    /// stops the restore before anything changes.
    /// - Throws: ``SextantError/Code/invalidArgument`` when the chain is encrypted and `key` is nil or
    ///   wrong, or a key is given and the chain is not encrypted.
    public func restoreBackup(
        from directory: String, at sequence: Int? = nil, collections: [String]? = nil, as newName: String? = nil, key: EncryptionKey? = nil,
        progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) {
        let io = core.io
        let chain = try Self.loadChain(io, directory, key: key)
        guard let chosen = sequence.map({ s in chain.first { $0.sequence == s } }) ?? chain.last else {
            throw SextantError(.notFound, sequence.map { "\(directory): no backup number \($0) (it has \(chain.map(\.sequence)))" } ?? "\(directory): holds no complete backup")
        }
        let stage = path + "/restore-\(getpid())-\(hex16(UInt64.random(in: 1...UInt64.max))).tmp"
        try io.makeDirectory(stage)
        defer { try? io.removeTree(stage) }
        var entries = chosen.collections
        if let collections {
            for c in collections where !entries.contains(where: { $0.name == c }) {
                throw SextantError(.notFound, "backup \(chosen.sequence) has no collection '\(c)' (it has: \(entries.map(\.name).joined(separator: ", ")))")
            }
            entries = entries.filter { collections.contains($0.name) }
        }
        let wanted = Set(entries.map { "collections/" + hex16($0.id) + "/" })
        var done = 0
        for f in chosen.files where wanted.contains(where: { f.path.hasPrefix($0) }) {
            let source = directory + "/" + Self.backupName(f.storedIn) + "/" + f.path
            guard io.exists(source) else { throw SextantError(.corrupt, "\(source): missing: the backup chain is broken") }
            let target = stage + "/" + f.path
            try Self.makeParents(io, of: target, under: stage)
            let crc =
                if let key, chosen.encryption != nil {
                    try EncryptedFile.copyDecrypting(
                        io: io, source, to: target, key: key, context: BackupManifest.context(f.storedIn, f.path), salt: f.salt
                    ).crc
                } else {
                    try Self.copyWithChecksum(io, source, to: target)
                }
            guard crc == f.crc32c, try fileSize(io, target) == f.bytes else {
                throw SextantError(.corrupt, "\(source): checksum mismatch (the file is damaged); nothing was restored")
            }
            done += f.bytes
            do { try progress(ProgressEvent(phase: "verify", records: 0, totalRecords: nil, bytes: done)) } catch {
                throw SextantError(.cancelled, "the restore was cancelled")
            }
        }
        if let newName {
            guard entries.count == 1 else { throw SextantError(.invalidArgument, "restoring under a new name needs exactly one collection (pick one)") }
            try Self.validateName(newName)
            entries[0].name = newName
        }
        try replaceCollections(with: entries) { (entry, target) throws(SextantError) in
            let source = stage + "/collections/" + hex16(entry.id)
            // A collection with no files (created, never written) has nothing to link: it restores empty.
            guard io.isDirectory(source) else { return }
            for file in try io.listDirectory(source) where file != "wal" {
                try io.link(source + "/" + file, to: target + "/" + file)
            }
            if io.isDirectory(source + "/wal") {
                for file in try io.listDirectory(source + "/wal") {
                    try io.link(source + "/wal/" + file, to: target + "/wal/" + file)
                }
            }
        }
    }

    /// Whether the backups in `directory` are encrypted (nil: it holds none), judged by the first one.
    static func chainIsEncrypted(_ io: any FileIO, _ directory: String) -> Bool? {
        let names = ((try? io.listDirectory(directory)) ?? []).filter { $0.hasPrefix("backup-") && !$0.hasSuffix(".partial") }.sorted()
        for name in names where io.exists(directory + "/" + name + "/" + BackupManifest.fileName) {
            return EncryptedContainer.isEncrypted(io: io, path: directory + "/" + name + "/" + BackupManifest.fileName)
        }
        return nil
    }

    /// The backups of a chain, oldest first. With `key`, every description must be encrypted with it;
    /// without, none may be encrypted.
    static func loadChain(_ io: any FileIO, _ directory: String, key: EncryptionKey? = nil) throws(SextantError) -> [BackupManifest] {
        guard io.exists(directory + "/CHAIN") else {
            throw SextantError(.notFound, "\(directory) is not a Sextant backup directory (no CHAIN file)")
        }
        var out: [BackupManifest] = []
        for name in try io.listDirectory(directory).sorted() where name.hasPrefix("backup-") && !name.hasSuffix(".partial") {
            let p = directory + "/" + name + "/" + BackupManifest.fileName
            guard io.exists(p) else { continue }
            do {
                let (bytes, encrypted) = try EncryptedFile.read(io: io, p, key: key, context: name + "/" + BackupManifest.fileName, what: "backup")
                let m = try JSONDecoder().decode(BackupManifest.self, from: Data(bytes))
                guard m.formatVersion == BackupManifest.formatVersion else {
                    throw SextantError(.unsupportedVersion, "\(p): backup format \(m.formatVersion) is not supported (this build reads \(BackupManifest.formatVersion))")
                }
                // An encrypted description is authenticated, so what it says about encryption is true; a
                // plain one that claims encrypted files was not written by a backup.
                guard encrypted == (m.encryption != nil), !encrypted || m.files.allSatisfy({ $0.salt != nil }) else {
                    throw SextantError(.corrupt, "\(p): the description's encryption fields do not match the file")
                }
                // A plain description is not authenticated: a crafted one must not point a restore's copies
                // (read from the chain, written into the staging directory) at paths outside them.
                for f in m.files where !isPathInsideBackup(f.path) || f.storedIn < 1 || f.storedIn > m.sequence {
                    throw SextantError(
                        .corrupt, "\(p): file \(quotedForMessage(f.path)) (stored in backup \(f.storedIn)) is not a file of this chain")
                }
                out.append(m)
            } catch let e as SextantError {
                throw e
            } catch {
                throw SextantError(.corrupt, "\(p): not a valid backup description: \(error)")
            }
        }
        return out.sorted { $0.sequence < $1.sequence }
    }

    /// Whether a description's file path stays inside a backup directory: relative, with no empty, `.` or
    /// `..` part and no NUL (what a backup writes: `collections/<id>/<file>`).
    static func isPathInsideBackup(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return !path.isEmpty && !path.utf8.contains(0) && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    static func info(_ m: BackupManifest) -> BackupInfo {
        BackupInfo(
            sequence: m.sequence, kind: m.kind, createdAt: m.createdAt, collections: m.collections.map(\.name),
            bytes: m.files.filter { $0.storedIn == m.sequence }.reduce(0) { $0 + $1.bytes }, totalBytes: m.files.reduce(0) { $0 + $1.bytes },
            keyID: m.encryption?.keyFingerprint)
    }

    static func makeParents(_ io: any FileIO, of file: String, under root: String) throws(SextantError) {
        var dir = root
        for part in file.dropFirst(root.count + 1).split(separator: "/").dropLast() {
            dir += "/" + part
            if !io.exists(dir) { try io.makeDirectoryDurably(dir) }
        }
    }

    /// Copies a file (atomically, durably) and returns the CRC-32C of its bytes.
    static func copyWithChecksum(_ io: any FileIO, _ from: String, to: String) throws(SextantError) -> UInt32 {
        var crc: UInt32 = 0
        try io.createAtomically(to) { (fd, tmp) throws(SextantError) in
            try forEachChunk(io, of: from) { (slice) throws(SextantError) in
                crc = CRC32C.checksum(slice, seed: crc)
                try io.write(fd, slice, path: tmp)
            }
        }
        return crc
    }

    static func checksum(_ io: any FileIO, _ path: String) throws(SextantError) -> (UInt32, Int) {
        var crc: UInt32 = 0
        var bytes = 0
        try forEachChunk(io, of: path) { (slice) throws(SextantError) in
            crc = CRC32C.checksum(slice, seed: crc)
            bytes += slice.count
        }
        return (crc, bytes)
    }

    /// Reads the file at `path` in 1 MiB pieces, in order, handing each to `body`.
    static func forEachChunk(_ io: any FileIO, of path: String, _ body: (UnsafeRawBufferPointer) throws(SextantError) -> Void) throws(SextantError) {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var offset = 0
        while true {
            let got = try io.pread(fd, into: buffer, at: Int64(offset), path: path)
            if got == 0 { break }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            offset += got
        }
    }
}
