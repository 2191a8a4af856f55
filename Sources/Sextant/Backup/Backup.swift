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
    }
    var formatVersion: Int
    var sequence: Int
    var parent: Int?
    var kind: String
    var createdAt: Double
    var collections: [Manifest.CollectionEntry]
    var files: [FileEntry]
}

extension Database {
    static func backupName(_ sequence: Int) -> String { String(format: "backup-%06d", sequence) }

    /// Backs up collections (all when nil) into `directory`: a full backup, or with `incremental` an
    /// increment that stores only the files published since the previous backup in `directory` (new
    /// segments, new deletion files, the log after the checkpoint) and refers to its ancestors for the
    /// rest. Point-in-time per collection, consistent while writes continue (as a snapshot). A backup
    /// appears only when complete (`backup-N.partial` is renamed at the end).
    @discardableResult
    public func backup(
        to directory: String, collections: [String]? = nil, incremental: Bool = false,
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
        let chain = try Self.loadChain(io, directory)
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
                let crc = try Self.copyWithChecksum(io, stage + "/" + f.path, to: target)
                files.append(.init(path: f.path, bytes: f.bytes, crc32c: crc, storedIn: sequence))
            }
            done += f.bytes
            do { try progress(ProgressEvent(phase: "backup", records: 0, totalRecords: nil, bytes: done)) } catch {
                throw SextantError(.cancelled, "the backup was cancelled")
            }
        }
        let manifest = BackupManifest(
            formatVersion: BackupManifest.formatVersion, sequence: sequence, parent: parent?.sequence, kind: incremental ? "incremental" : "full",
            createdAt: Date().timeIntervalSince1970, collections: entries, files: files)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        let json: Data
        do { json = try enc.encode(manifest) } catch { throw SextantError(.io, "could not encode the backup description: \(error)") }
        try io.writeFileAtomically(partial + "/BACKUP.json", Array(json))
        try io.syncDirectory(partial)
        try io.rename(partial, to: final)
        try io.syncDirectory(directory)
        ok = true
        return Self.info(manifest)
    }

    /// The backups in `directory`, oldest first.
    public static func backups(in directory: String) throws(SextantError) -> [BackupInfo] {
        try loadChain(PosixFileIO(), directory).map(info)
    }

    /// Checks a backup directory: every backup's files are present with their sizes and checksums, and
    /// every file an increment refers to exists in the backup that holds it. Returns the problems (each
    /// naming the file), empty when the chain is whole.
    public static func verifyBackup(at directory: String) -> (problems: [String], files: Int, bytes: Int) {
        let io = PosixFileIO()
        var problems: [String] = []
        var files = 0, bytes = 0
        let chain: [BackupManifest]
        do { chain = try loadChain(io, directory) } catch { return ([error.message], 0, 0) }
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
                    }
                    continue
                }
                do {
                    let (crc, n) = try checksum(io, holder)
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
    public func restoreBackup(
        from directory: String, at sequence: Int? = nil, collections: [String]? = nil, as newName: String? = nil,
        progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) {
        let io = core.io
        let chain = try Self.loadChain(io, directory)
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
            let crc = try Self.copyWithChecksum(io, source, to: target)
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

    static func loadChain(_ io: any FileIO, _ directory: String) throws(SextantError) -> [BackupManifest] {
        guard io.exists(directory + "/CHAIN") else {
            throw SextantError(.notFound, "\(directory) is not a Sextant backup directory (no CHAIN file)")
        }
        var out: [BackupManifest] = []
        for name in try io.listDirectory(directory) where name.hasPrefix("backup-") && !name.hasSuffix(".partial") {
            let p = directory + "/" + name + "/BACKUP.json"
            guard io.exists(p) else { continue }
            do {
                let m = try JSONDecoder().decode(BackupManifest.self, from: Data(try io.readFile(p)))
                guard m.formatVersion == BackupManifest.formatVersion else {
                    throw SextantError(.unsupportedVersion, "\(p): backup format \(m.formatVersion) is not supported (this build reads \(BackupManifest.formatVersion))")
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

    static func info(_ m: BackupManifest) -> BackupInfo {
        BackupInfo(
            sequence: m.sequence, kind: m.kind, createdAt: m.createdAt, collections: m.collections.map(\.name),
            bytes: m.files.filter { $0.storedIn == m.sequence }.reduce(0) { $0 + $1.bytes }, totalBytes: m.files.reduce(0) { $0 + $1.bytes })
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
        let src = try io.open(from, flags: O_RDONLY, mode: 0)
        defer { io.close(src) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var crc: UInt32 = 0
        try io.createAtomically(to) { (fd, tmp) throws(SextantError) in
            var offset = 0
            while true {
                let got = try io.pread(src, into: buffer, at: Int64(offset), path: from)
                if got == 0 { break }
                let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                crc = CRC32C.checksum(slice, seed: crc)
                try io.write(fd, slice, path: tmp)
                offset += got
            }
        }
        return crc
    }

    static func checksum(_ io: any FileIO, _ path: String) throws(SextantError) -> (UInt32, Int) {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var crc: UInt32 = 0
        var offset = 0
        while true {
            let got = try io.pread(fd, into: buffer, at: Int64(offset), path: path)
            if got == 0 { break }
            crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), seed: crc)
            offset += got
        }
        return (crc, offset)
    }
}
