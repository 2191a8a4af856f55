// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A string that must never appear in an encrypted file's bytes.
private let secret = "ZebraQuasar-7f3e-confidential"

private func read(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
private func write(_ data: Data, _ path: String) throws { try data.write(to: URL(fileURLWithPath: path)) }

/// Copies a directory tree (fresh target), so each tampering starts from the intact original.
private func copyTree(_ from: String, _ to: String) throws {
    try? FileManager.default.removeItem(atPath: to)
    try FileManager.default.copyItem(atPath: from, toPath: to)
}

/// Every file under `dir` (relative paths).
private func files(under dir: String) throws -> [String] {
    let all = try FileManager.default.subpathsOfDirectory(atPath: dir)
    return all.filter { !FileManager.default.isDirectory($0, in: dir) }.sorted()
}

extension FileManager {
    fileprivate func isDirectory(_ path: String, in dir: String) -> Bool {
        var isDir: ObjCBool = false
        return fileExists(atPath: dir + "/" + path, isDirectory: &isDir) && isDir.boolValue
    }
}

@Suite struct EncryptionTests {
    // MARK: - fixtures

    /// Records with integer and string ids, metadata and documents holding `secret`, over a segment and
    /// the memtable. Without `graphs`, no HNSW graph is built (the tests run faster on a busy machine).
    func populate(
        _ db: Database, name: String = "src", count: Int = 900, dimension: Int = 16, seed: UInt64 = 1, graphs: Bool = false
    ) throws -> VectorCollection {
        let index = IndexConfiguration(minimumRowsForGraph: graphs ? 1024 : 1 << 30)
        let c = try db.createCollection(name, dimension: dimension, metric: .cosine, index: index)
        try c.createPayloadIndex("group", type: .keyword)
        let vectors = randomVectors(count, dimension: dimension, seed: seed)
        var records: [Record] = []
        for i in 0..<count {
            let id: RecordID = i % 7 == 0 ? .string("s-\(i)") : .int(UInt64(i))
            let metadata: JSONValue? = i % 5 == 0 ? nil : ["group": .string("g\(i % 3)"), "note": .string(secret), "n": .int(Int64(i))]
            var v = vectors[i]
            if i == 1 { v[0] = -0.0 }
            records.append(Record(id: id, vector: v, metadata: metadata, document: i % 4 == 0 ? nil : "doc \(i) \(secret)"))
        }
        let half = count / 2
        for start in stride(from: 0, to: half, by: 1000) { try c.upsert(Array(records[start..<min(half, start + 1000)])) }
        try c.flush()
        for start in stride(from: half, to: count, by: 1000) { try c.upsert(Array(records[start..<min(count, start + 1000)])) }
        return c
    }

    func everything(_ c: VectorCollection) throws -> [StoredRecord] { try c.scroll(limit: 1_000_000, include: .all).records }

    func bitsEqual(_ a: [StoredRecord], _ b: [StoredRecord]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.id == y.id, x.metadata == y.metadata, x.document == y.document, x.vector?.map(\.bitPattern) == y.vector?.map(\.bitPattern)
            else { return false }
        }
        return true
    }

    /// What a failed operation must leave as it was: every collection's records, the snapshots, and no
    /// work directory (restore, backup, import) or staging collection.
    struct DatabaseState: Equatable {
        var collections: [String: [StoredRecord]]
        var snapshots: [String]
        var entries: [String]
    }

    func state(_ db: Database) throws -> DatabaseState {
        var collections: [String: [StoredRecord]] = [:]
        for name in db.collectionNames() { collections[name] = try everything(try db.collection(name)) }
        let snapshotsDir = db.path + "/snapshots"
        let snapshots = FileManager.default.fileExists(atPath: snapshotsDir) ? try FileManager.default.contentsOfDirectory(atPath: snapshotsDir).sorted() : []
        let entries = try FileManager.default.contentsOfDirectory(atPath: db.path).filter {
            $0.hasSuffix(".tmp") && ($0.hasPrefix("restore-") || $0.hasPrefix("backup-"))
        }.sorted()
        return DatabaseState(collections: collections, snapshots: snapshots, entries: entries)
    }

    // MARK: - keys

    @Test func keyFilesAreReadInEveryDocumentedFormAndBadOnesAreRefused() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let key = EncryptionKey.generate()
        let raw = try #require(EncryptionKey.decodeHex(key.hex))
        let b64 = Data(raw).base64EncodedString()
        let forms: [(String, Data)] = [
            ("raw", Data(raw)),
            ("hex", Data((key.hex + "\n").utf8)),
            ("HEX", Data((key.hex.uppercased() + "\r\n").utf8)),
            ("base64", Data((b64 + "\n").utf8)),
            ("base64-unpadded", Data(b64.replacingOccurrences(of: "=", with: "").utf8)),
            ("base64url", Data(b64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").utf8)),
        ]
        for (name, bytes) in forms {
            try write(bytes, dir.sub(name))
            #expect(try EncryptionKey(contentsOfFile: dir.sub(name)).id == key.id, "\(name)")
        }
        #expect(try EncryptionKey(text: key.hex, source: "SEXTANT_BACKUP_KEY").id == key.id)
        #expect(try EncryptionKey(text: " " + b64 + "\n", source: "SEXTANT_BACKUP_KEY").id == key.id)
        #expect(EncryptionKey.generate().id != key.id)
        #expect("\(key)".contains(key.id) && !"\(key)".contains(key.hex))

        // keygen's file: hex and a newline, mode 0600, never overwritten.
        try key.write(toNewFile: dir.sub("new.key"))
        var st = stat()
        #expect(stat(dir.sub("new.key"), &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try read(dir.sub("new.key")) == Data((key.hex + "\n").utf8))
        #expect(try EncryptionKey(contentsOfFile: dir.sub("new.key")).id == key.id)
        expectError(.alreadyExists, "never overwritten") { try EncryptionKey.generate().write(toNewFile: dir.sub("new.key")) }
        #expect(try read(dir.sub("new.key")) == Data((key.hex + "\n").utf8))

        let bad: [(String, Data)] = [
            ("empty", Data()),
            ("raw31", Data(raw.prefix(31))),
            ("raw33", Data(raw + [0xFF])),
            ("hex63", Data(key.hex.dropLast().utf8)),
            ("hex65", Data((key.hex + "a").utf8)),
            ("hexg", Data(("g" + key.hex.dropFirst()).utf8)),
            ("b64-31", Data(Data(raw.prefix(31)).base64EncodedString().utf8)),
            ("b64-33", Data(Data(raw + [1]).base64EncodedString().utf8)),
            ("zeros", Data(count: 32)),
            ("text", Data("correct horse battery staple\n".utf8)),
        ]
        for (name, bytes) in bad {
            try write(bytes, dir.sub(name))
            do {
                _ = try EncryptionKey(contentsOfFile: dir.sub(name))
                Issue.record("\(name) was accepted as a key")
            } catch {
                #expect(error.code == .invalidArgument, "\(name): \(error.code) \(error.message)")
                #expect(!error.message.contains(key.hex.prefix(20)) && !error.message.contains(b64.prefix(20)) && !error.message.contains("horse"), "\(name): \(error.message)")
            }
        }
        expectError(.notFound, "no such key file") { _ = try EncryptionKey(contentsOfFile: dir.sub("missing")) }
        expectError(.invalidArgument, "SEXTANT_BACKUP_KEY", "64 hex digits") { _ = try EncryptionKey(text: "abc123", source: "SEXTANT_BACKUP_KEY") }
        expectError(.invalidArgument, "32 bytes, not 31") { _ = try EncryptionKey(bytes: raw.prefix(31)) }
    }

    // MARK: - the container itself

    /// Writes `content` as a container with small chunks (so positions are easy to name).
    func seal(_ content: [UInt8], key: EncryptionKey, context: String = "f", chunk: Int = 64) throws -> Data {
        var out = Data()
        let w = EncryptingWriter(key: key, context: context, chunkBytes: chunk) { b in out.append(contentsOf: b) }
        try content.withBytes { (b) throws(SextantError) in try w.write(b) }
        try w.finish()
        return out
    }

    /// Opens a container file completely.
    func open(_ data: Data, key: EncryptionKey, context: String = "f", salt: String? = nil, at path: String) throws(SextantError) -> [UInt8] {
        do { try write(data, path) } catch { throw SextantError(.io, "\(error)") }
        let io = PosixFileIO()
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let r = try DecryptingReader(io: io, fd: fd, path: path, key: key, context: context, salt: salt)
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 50)
        while true {
            let result: Result<Int, SextantError> = buffer.withUnsafeMutableBytes { b in Result { () throws(SextantError) in try r.read(into: b) } }
            let got = try result.get()
            if got == 0 { break }
            out += buffer[0..<got]
        }
        return out
    }

    @Test func theContainerDetectsEveryFlippedByteCutAppendAndReorder() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let key = EncryptionKey.generate()
        var rng = RepeatableRandomNumberGenerator(seed: 9)
        let content = (0..<200).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let sealed = try seal(content, key: key)
        let stride = 64 + 16
        #expect(sealed.count == 64 + 3 * stride + 8 + 16)
        #expect(try open(sealed, key: key, at: dir.sub("ok")) == content)
        let path = dir.sub("bad")

        // Every single flipped bit position of every byte: header, ciphertext, tags.
        for i in 0..<sealed.count {
            var d = sealed
            d[i] ^= 0x01
            do {
                _ = try open(d, key: key, at: path)
                Issue.record("byte \(i) flipped was accepted")
            } catch {
                #expect(error.code == .corrupt, "byte \(i): \(error.code) \(error.message)")
                if i >= 64 { #expect(error.message.contains("chunk \((i - 64) / stride) of 4"), "byte \(i): \(error.message)") }
            }
        }
        // Every truncation.
        for n in 0..<sealed.count {
            expectError(.corrupt, "bad") { _ = try open(sealed.prefix(n), key: key, at: path) }
        }
        // Appended bytes: a few, a tag's worth, a whole chunk, a copy of the last chunk.
        for extra in [Data([0]), Data(count: 16), Data(count: stride), sealed.suffix(24)] {
            expectError(.corrupt, "bad") { _ = try open(sealed + extra, key: key, at: path) }
        }
        // Chunks swapped, or one dropped from the middle.
        let header = sealed.prefix(64)
        let chunks = (0..<3).map { sealed.subdata(in: (64 + $0 * stride)..<(64 + ($0 + 1) * stride)) }
        let last = sealed.suffix(24)
        expectError(.corrupt, "chunk 0 of 4", "failed authentication") { _ = try open(header + chunks[1] + chunks[0] + chunks[2] + last, key: key, at: path) }
        expectError(.corrupt, "chunk 1 of 3") { _ = try open(header + chunks[0] + chunks[2] + last, key: key, at: path) }
        // The header of another file with the same key, or the same file opened as another file.
        let other = try seal(content, key: key)
        expectError(.corrupt, "chunk 0") { _ = try open(other.prefix(64) + sealed.dropFirst(64), key: key, at: path) }
        expectError(.corrupt, "chunk 0") { _ = try open(sealed, key: key, context: "g", at: path) }
        // A manifest's salt that does not match: the file was replaced.
        let salt = sealed.subdata(in: 24..<56).map { String(format: "%02x", $0) }.joined()
        #expect(try open(sealed, key: key, salt: salt, at: path) == content)
        expectError(.corrupt, "not the file recorded here") { _ = try open(other, key: key, salt: salt, at: path) }
        // A wrong key is told apart from damage.
        let wrong = EncryptionKey.generate()
        expectError(.invalidArgument, "wrong key", key.id, wrong.id) { _ = try open(sealed, key: wrong, at: path) }

        // Content of a whole number of chunks: the last full chunk is the final one, so cutting it off
        // at the boundary is detected; empty content is one empty chunk.
        let even = try seal(Array(content.prefix(128)), key: key)
        #expect(even.count == 64 + 2 * stride)
        #expect(try open(even, key: key, at: path) == Array(content.prefix(128)))
        expectError(.corrupt, "chunk 0 of 1") { _ = try open(even.prefix(64 + stride), key: key, at: path) }
        let empty = try seal([], key: key)
        #expect(empty.count == 64 + 16)
        #expect(try open(empty, key: key, at: path) == [])
        expectError(.corrupt, "truncated") { _ = try open(empty.prefix(64), key: key, at: path) }
    }

    // MARK: - exports

    static let exportCases: [(ExportFormat, Compression)] = {
        var cases: [(ExportFormat, Compression)] = [(.npy, .none), (.npy, .gzip), (.jsonl, .none), (.jsonl, .gzip)]
        if (try? Compression.zstd.checkAvailable()) != nil { cases.append((.npy, .zstd)) }
        return cases
    }()

    @Test(arguments: exportCases)
    func encryptedExportsRestoreBitExact(format: ExportFormat, compression: Compression) throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        // 2,000 × 24 floats: each vectors file spans three 64 KiB chunks.
        let c = try populate(db, count: 2000, dimension: 24)
        let expected = try everything(c)
        let key = EncryptionKey.generate()
        let summary = try c.export(to: dir.sub("ex"), options: ExportOptions(format: format, compression: compression, chunkRecords: 1700, encryptionKey: key))
        #expect(summary.keyID == key.id)
        let names = try files(under: dir.sub("ex"))
        #expect(names.contains("manifest.json.enc") && !names.contains("manifest.json"))
        #expect(names.count == (format == .npy ? 5 : 3), "\(names)")
        for name in names {
            #expect(name.hasSuffix(".enc"), "\(name)")
            #expect(try read(dir.sub("ex/" + name)).prefix(8) == Data("SEXTENC\0".utf8), "\(name)")
        }
        // The direct path (new collection), the merge path and the dry run.
        let s = try db.restore(from: dir.sub("ex"), options: RestoreOptions(into: "copy", encryptionKey: key))
        #expect(s.added == expected.count)
        #expect(bitsEqual(try everything(try db.collection("copy")), expected))
        let dry = try db.restore(from: dir.sub("ex"), options: RestoreOptions(into: "copy", mode: .merge, onConflict: .skip, dryRun: true, encryptionKey: key))
        #expect(dry.conflicts == expected.count)
        let target = try db.createCollection("merged", dimension: 24, metric: .cosine)
        try target.upsert([Record(id: .string("only-here"), vector: randomVectors(1, dimension: 24, seed: 77)[0])])
        let merged = try db.restore(from: dir.sub("ex"), options: RestoreOptions(into: "merged", mode: .merge, encryptionKey: key))
        #expect(merged.added == expected.count)
        let after = try everything(try db.collection("merged"))  // the restore swapped a new collection in
        #expect(bitsEqual(after.filter { $0.id != .string("only-here") }, expected))
        #expect(after.count == expected.count + 1)
    }

    @Test func encryptedExportsNeedTheirKeyAndKeysNeedEncryptedExports() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db, count: 300)
        let key = EncryptionKey.generate()
        try c.export(to: dir.sub("ex"), options: ExportOptions(encryptionKey: key))
        try c.export(to: dir.sub("plain"))
        _ = try populate(db, name: "target", count: 40, seed: 5)
        let before = try state(db)
        let manifest = dir.sub("ex/manifest.json.enc")
        for mode in [RestoreMode.new, .override, .merge] {
            expectError(.invalidArgument, manifest + ": this export is encrypted; pass --key FILE or set SEXTANT_BACKUP_KEY") {
                try db.restore(from: dir.sub("ex"), options: RestoreOptions(into: "target", mode: mode))
            }
            expectError(.invalidArgument, "wrong key", key.id) {
                try db.restore(from: dir.sub("ex"), options: RestoreOptions(into: "target", mode: mode, encryptionKey: EncryptionKey.generate()))
            }
            expectError(.invalidArgument, "this export is not encrypted, but a key was given") {
                try db.restore(from: dir.sub("plain"), options: RestoreOptions(into: "target", mode: mode, encryptionKey: key))
            }
        }
        #expect(try state(db) == before)
        // The manifest itself is encrypted: even listing the export needs the key.
        expectError(.invalidArgument, "is encrypted") { _ = try Database.loadExportManifest(PosixFileIO(), dir.sub("ex")) }
        #expect(try Database.loadExportManifest(PosixFileIO(), dir.sub("ex"), key: key).records == 300)
    }

    @Test func tamperedExportsAreRefusedBeforeAnythingIsPublished() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        // Two chunk files of 1,300 × 16 floats (83 kB: two container chunks each), the same size.
        let c = try populate(db, count: 2600, dimension: 16)
        let key = EncryptionKey.generate()
        try c.export(to: dir.sub("ex"), options: ExportOptions(chunkRecords: 1300, encryptionKey: key))
        try c.export(to: dir.sub("other"), options: ExportOptions(chunkRecords: 1300, encryptionKey: key))
        _ = try populate(db, name: "target", count: 50, dimension: 16, seed: 3)
        let before = try state(db)
        let v0 = "vectors-000000.npy.enc", v1 = "vectors-000001.npy.enc"
        let size = try read(dir.sub("ex/" + v0)).count
        #expect(try read(dir.sub("ex/" + v1)).count == size)
        let chunk = EncryptedContainer.defaultChunkBytes + 16

        func attempt(_ what: String, _ fragments: [String], _ damage: (String) throws -> Void) throws {
            try copyTree(dir.sub("ex"), dir.sub("bad"))
            try damage(dir.sub("bad"))
            for (mode, dryRun) in [(RestoreMode.override, false), (.merge, false), (.override, true)] {
                do {
                    try db.restore(from: dir.sub("bad"), options: RestoreOptions(into: "target", mode: mode, onConflict: .overwrite, dryRun: dryRun, encryptionKey: key))
                    Issue.record("\(what) (\(mode), dry run \(dryRun)) was restored")
                } catch {
                    #expect(error.code == .corrupt, "\(what): \(error.code) \(error.message)")
                    for f in fragments { #expect(error.message.contains(f), "\(what): '\(f)' is not in \(error.message)") }
                }
                #expect(try state(db) == before, "\(what): the database changed")
            }
        }
        func flip(_ file: String, at offset: Int) -> (String) throws -> Void {
            { d in
                var data = try read(d + "/" + file)
                data[offset] ^= 0x40
                try write(data, d + "/" + file)
            }
        }
        for (offset, fragment) in [(2, v0), (20, v0), (40, v0), (61, v0), (64, "chunk 0"), (64 + 30_000, "chunk 0"), (64 + chunk - 3, "chunk 0"), (64 + chunk + 10, "chunk 1"), (size - 1, "chunk 1")] {
            try attempt("\(v0) byte \(offset)", [v0, fragment], flip(v0, at: offset))
        }
        try attempt("a records file", ["records-000001.jsonl.enc", "chunk 0"], flip("records-000001.jsonl.enc", at: 100))
        try attempt("the manifest", ["manifest.json.enc"], flip("manifest.json.enc", at: 200))
        try attempt("cut by a byte", [v1], { d in try write(try read(d + "/" + v1).dropLast(), d + "/" + v1) })
        try attempt("an appended byte", [v1], { d in try write(try read(d + "/" + v1) + Data([0]), d + "/" + v1) })
        try attempt("two files swapped", [v0, "not the file recorded here"]) { d in
            let a = try read(d + "/" + v0), b = try read(d + "/" + v1)
            try write(b, d + "/" + v0)
            try write(a, d + "/" + v1)
        }
        try attempt("a file from another export with the same key", [v0, "not the file recorded here"]) { d in
            try write(try read(dir.sub("other/" + v0)), d + "/" + v0)
        }
        try attempt("the manifest of another export", ["not the file recorded here"]) { d in
            try write(try read(dir.sub("other/manifest.json.enc")), d + "/manifest.json.enc")
        }
        try attempt("two chunks swapped", [v0, "chunk 0", "failed authentication"]) { d in
            var data = try read(d + "/" + v0)
            let first = data.subdata(in: 64..<(64 + chunk))
            let second = data.subdata(in: (64 + chunk)..<data.count)
            data = data.prefix(64) + second + first
            try write(data, d + "/" + v0)
        }
        // The intact export still restores, and the target is writable (a merge's block was lifted).
        try db.restore(from: dir.sub("ex"), options: RestoreOptions(into: "target", mode: .override, encryptionKey: key))
        #expect(bitsEqual(try everything(try db.collection("target")), try everything(c)))
        try db.collection("target").upsert([Record(id: .int(999_999), vector: randomVectors(1, dimension: 16, seed: 8)[0])])
    }

    // MARK: - backups

    @Test func encryptedBackupChainsRestoreEveryLinkBitExact() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db, count: 2400, graphs: true)
        let key = EncryptionKey.generate()
        let chain = dir.sub("chain")
        var expected = [try everything(c)]
        let first = try db.backup(to: chain, encryptionKey: key)
        #expect(first.keyID == key.id && first.kind == "full")
        for step in 1...2 {
            try c.upsert((0..<50).map { Record(id: .int(UInt64(10_000 * step + $0)), vector: randomVectors(1, dimension: 16, seed: UInt64(step * 100 + $0))[0], metadata: ["step": .int(Int64(step))]) })
            try c.delete([.int(UInt64(step * 3))])
            if step == 2 { try c.compact() }
            let inc = try db.backup(to: chain, incremental: true, encryptionKey: key)
            #expect(inc.kind == "incremental" && inc.keyID == key.id)
            expected.append(try everything(c))
        }
        // Every file of the chain but CHAIN is a container.
        for name in try files(under: chain) where name != "CHAIN" {
            #expect(try read(chain + "/" + name).prefix(8) == Data("SEXTENC\0".utf8), "\(name)")
        }
        #expect(try Database.backups(in: chain, key: key).map(\.keyID) == [key.id, key.id, key.id])
        let report = Database.verifyBackup(at: chain, key: key)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.files > 0)
        for (i, want) in expected.enumerated() {
            try db.restoreBackup(from: chain, at: i + 1, as: "at-\(i + 1)", key: key)
            #expect(bitsEqual(try everything(try db.collection("at-\(i + 1)")), want), "backup \(i + 1)")
        }
        try c.upsert([Record(id: .int(77_777), vector: randomVectors(1, dimension: 16, seed: 1)[0])])
        try db.restoreBackup(from: chain, key: key)
        #expect(bitsEqual(try everything(try db.collection("src")), expected.last!))
    }

    @Test func backupChainsHaveOneKeyOrNone() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db, count: 200)
        let key = EncryptionKey.generate(), wrong = EncryptionKey.generate()
        try db.backup(to: dir.sub("enc"), encryptionKey: key)
        try db.backup(to: dir.sub("plain"))
        try c.upsert([Record(id: .int(5000), vector: randomVectors(1, dimension: 16, seed: 2)[0])])
        let before = try state(db)
        let chains = (try files(under: dir.sub("enc")), try files(under: dir.sub("plain")))

        expectError(.invalidArgument, "holds encrypted backups") { try db.backup(to: dir.sub("enc"), incremental: true) }
        expectError(.invalidArgument, "holds encrypted backups") { try db.backup(to: dir.sub("enc")) }
        expectError(.invalidArgument, "wrong key", key.id, wrong.id) { try db.backup(to: dir.sub("enc"), incremental: true, encryptionKey: wrong) }
        expectError(.invalidArgument, "unencrypted backups") { try db.backup(to: dir.sub("plain"), incremental: true, encryptionKey: key) }
        #expect(try files(under: dir.sub("enc")) == chains.0 && files(under: dir.sub("plain")) == chains.1)

        expectError(.invalidArgument, "this backup is encrypted; pass --key FILE or set SEXTANT_BACKUP_KEY") { try db.restoreBackup(from: dir.sub("enc")) }
        expectError(.invalidArgument, "wrong key") { try db.restoreBackup(from: dir.sub("enc"), key: wrong) }
        expectError(.invalidArgument, "this backup is not encrypted, but a key was given") { try db.restoreBackup(from: dir.sub("plain"), key: key) }
        expectError(.invalidArgument, "is encrypted") { _ = try Database.backups(in: dir.sub("enc")) }
        #expect(Database.verifyBackup(at: dir.sub("enc")).problems.first?.contains("this backup is encrypted") == true)
        #expect(Database.verifyBackup(at: dir.sub("enc"), key: wrong).problems.first?.contains("wrong key") == true)
        #expect(try state(db) == before)
    }

    @Test func tamperedBackupsAreRefusedBeforeAnythingIsPublished() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        // Two collections: segments of "a" span at least three 64 KiB chunks.
        _ = try populate(db, name: "a", count: 4400, dimension: 16, seed: 1)
        _ = try populate(db, name: "b", count: 300, dimension: 16, seed: 2)
        try db.collection("a").flush()
        try db.collection("b").flush()
        let key = EncryptionKey.generate()
        try db.backup(to: dir.sub("chain"), encryptionKey: key)
        try db.collection("a").upsert([Record(id: .int(90_000), vector: randomVectors(1, dimension: 16, seed: 4)[0])])
        try db.backup(to: dir.sub("chain"), incremental: true, encryptionKey: key)
        try db.collection("a").upsert([Record(id: .int(90_001), vector: randomVectors(1, dimension: 16, seed: 5)[0])])
        let before = try state(db)
        let stored = try files(under: dir.sub("chain/backup-000001")).filter { $0.hasSuffix(".seg") }
        let collectionA = "collections/" + hex16(try db.collection("a").id)
        let inA = try #require(stored.first { $0.hasPrefix(collectionA) })
        let inB = try #require(stored.first { !$0.hasPrefix(collectionA) })
        let seg = "backup-000001/" + inA, otherSeg = "backup-000001/" + inB
        let size = try read(dir.sub("chain/" + seg)).count
        let chunk = EncryptedContainer.defaultChunkBytes + 16
        #expect(size > 64 + 2 * chunk)
        let chunks = (size - 64 + chunk - 1) / chunk
        let lastChunk = size - 64 - (chunks - 1) * chunk
        let last = "chunk \(chunks - 1)"

        func attempt(_ what: String, _ fragments: [String], _ damage: (String) throws -> Void) throws {
            try copyTree(dir.sub("chain"), dir.sub("bad"))
            try damage(dir.sub("bad"))
            do {
                try db.restoreBackup(from: dir.sub("bad"), key: key)
                Issue.record("\(what) was restored")
            } catch {
                #expect(error.code == .corrupt, "\(what): \(error.code) \(error.message)")
                for f in fragments { #expect(error.message.contains(f), "\(what): '\(f)' is not in \(error.message)") }
            }
            #expect(try state(db) == before, "\(what): the database changed")
            let problems = Database.verifyBackup(at: dir.sub("bad"), key: key).problems
            #expect(!problems.isEmpty, "\(what): verify-backup found nothing")
            for f in fragments { #expect(problems.contains { $0.contains(f) }, "\(what): '\(f)' is in no problem: \(problems)") }
        }
        func edit(_ file: String, _ change: @escaping (inout Data) -> Void) -> (String) throws -> Void {
            { d in
                var data = try read(d + "/" + file)
                change(&data)
                try write(data, d + "/" + file)
            }
        }
        for (offset, fragment) in [(5, "not an encrypted"), (18, "header is damaged"), (33, "header is damaged"), (64, "chunk 0"), (64 + chunk - 1, "chunk 0"), (64 + chunk + 99, "chunk 1"), (size - lastChunk + 3, last), (size - 1, last)] {
            try attempt("byte \(offset)", [inA, fragment], edit(seg) { $0[offset] ^= 0x04 })
        }
        try attempt("cut by a byte", [inA, last], edit(seg) { $0.removeLast() })
        try attempt("cut at a chunk boundary", [inA, "chunk \(chunks - 2) of \(chunks - 1)"], edit(seg) { $0.removeLast(lastChunk) })
        try attempt("an appended byte", [inA, last], edit(seg) { $0.append(0) })
        try attempt("15 appended bytes after a full chunk", [inA, "cut short"], edit(seg) { $0.removeLast(lastChunk); $0.append(Data(count: 15)) })
        try attempt("an appended chunk", [inA, last], edit(seg) { $0.append(contentsOf: $0.subdata(in: 64..<(64 + chunk))) })
        try attempt("two chunks swapped", [inA, "chunk 0", "failed authentication"]) { d in
            var data = try read(d + "/" + seg)
            let a = data.subdata(in: 64..<(64 + chunk)), b = data.subdata(in: (64 + chunk)..<(64 + 2 * chunk))
            data.replaceSubrange((64 + chunk)..<(64 + 2 * chunk), with: a)
            data.replaceSubrange(64..<(64 + chunk), with: b)
            try write(data, d + "/" + seg)
        }
        try attempt("two files swapped", ["not the file recorded here"]) { d in
            let a = try read(d + "/" + seg), b = try read(d + "/" + otherSeg)
            try write(b, d + "/" + seg)
            try write(a, d + "/" + otherSeg)
        }
        try attempt("a description flipped", ["backup-000002/BACKUP.json"], edit("backup-000002/BACKUP.json") { $0[100] ^= 1 })
        try attempt("descriptions swapped between backups", ["BACKUP.json", "failed authentication"]) { d in
            let a = try read(d + "/backup-000001/BACKUP.json"), b = try read(d + "/backup-000002/BACKUP.json")
            try write(b, d + "/backup-000001/BACKUP.json")
            try write(a, d + "/backup-000002/BACKUP.json")
        }
        try attempt("a plain file in place of an encrypted one", [inA, "not an encrypted"]) { d in
            try write(Data(count: size), d + "/" + seg)
        }
        // The intact chain restores.
        try db.restoreBackup(from: dir.sub("chain"), key: key)
    }

    // MARK: - snapshot archives

    @Test func encryptedSnapshotArchivesRoundTripAndRefuseTampering() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let a = try Database.open(at: dir.sub("a"))
        let c = try populate(a, count: 2000, dimension: 16)
        let expected = try everything(c)
        try a.createSnapshot("s")
        try a.createSnapshot("p")
        let key = EncryptionKey.generate()
        try a.archiveSnapshot("s", to: dir.sub("s.sxa"), encryptionKey: key)
        try a.archiveSnapshot("p", to: dir.sub("p.sxa"))
        a.close()
        let data = try read(dir.sub("s.sxa"))
        #expect(data.prefix(8) == Data("SEXTENC\0".utf8))
        #expect(data.count > 64 + 2 * (EncryptedContainer.defaultChunkBytes + 16))

        let b = try Database.open(at: dir.sub("b"))
        defer { b.close() }
        _ = try populate(b, name: "src", count: 20, seed: 9)
        let before = try state(b)
        func refused(_ what: String, _ code: SextantError.Code, _ fragments: [String], _ bytes: Data?, key k: EncryptionKey? = key, file: String = "bad.sxa") throws {
            if let bytes { try write(bytes, dir.sub(file)) }
            do {
                try b.importSnapshotArchive(dir.sub(file), as: "imported", key: k)
                Issue.record("\(what) was imported")
            } catch {
                #expect(error.code == code, "\(what): \(error.code) \(error.message)")
                for f in fragments { #expect(error.message.contains(f), "\(what): '\(f)' is not in \(error.message)") }
            }
            #expect(try state(b) == before, "\(what): the database changed")
        }
        let chunk = EncryptedContainer.defaultChunkBytes + 16
        for offset in [3, 30, 64, 64 + chunk - 2, 64 + chunk + 5, data.count / 2, data.count - 1] {
            var d = data
            d[offset] ^= 0x80
            try refused("byte \(offset)", .corrupt, ["bad.sxa"] + (offset >= 64 ? ["chunk"] : []), d)
        }
        try refused("cut", .corrupt, ["bad.sxa"], data.dropLast(40))
        try refused("cut at a chunk boundary", .corrupt, ["chunk"], data.prefix(64 + 2 * chunk))
        try refused("appended", .corrupt, ["bad.sxa"], data + Data(count: 100))
        try refused("no key", .invalidArgument, ["this snapshot archive is encrypted; pass --key FILE or set SEXTANT_BACKUP_KEY"], data, key: nil)
        try refused("wrong key", .invalidArgument, ["wrong key"], data, key: EncryptionKey.generate())
        try refused("a plain archive given a key", .invalidArgument, ["not encrypted"], nil, file: "p.sxa")

        let info = try b.importSnapshotArchive(dir.sub("s.sxa"), key: key)
        #expect(info.name == "s")
        try b.restoreSnapshot("s")
        #expect(bitsEqual(try everything(try b.collection("src")), expected))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.sub("b/snapshots")) == ["s"])
    }

    // MARK: - confidentiality

    @Test func noPlaintextOfTheRecordsAppearsInEncryptedFiles() throws {
        let dir = TemporaryDirectory("sextant-enc")
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db, count: 500)
        let key = EncryptionKey.generate()
        try c.export(to: dir.sub("plain"), options: ExportOptions(format: .jsonl))
        try c.export(to: dir.sub("npy"), options: ExportOptions(encryptionKey: key))
        try c.export(to: dir.sub("jsonl"), options: ExportOptions(format: .jsonl, encryptionKey: key))
        try db.backup(to: dir.sub("backup"), encryptionKey: key)
        try c.upsert([Record(id: .string(secret), vector: randomVectors(1, dimension: 16, seed: 3)[0], metadata: ["k": .string(secret)])])
        try db.backup(to: dir.sub("backup"), incremental: true, encryptionKey: key)
        try db.createSnapshot("s")
        try FileManager.default.createDirectory(atPath: dir.sub("out"), withIntermediateDirectories: true)
        try db.archiveSnapshot("s", to: dir.sub("out/s.sxa"), encryptionKey: key)
        let needles = [Data(secret.utf8), Data("\"group\"".utf8), Data("SEXTSEG".utf8), Data("sextant-export".utf8), Data("SEXTSARC".utf8)]
        func leaks(_ root: String) throws -> [String] {
            var found: [String] = []
            for name in try files(under: root) where name != "CHAIN" {
                let bytes = try read(root + "/" + name)
                for n in needles where bytes.range(of: n) != nil { found.append("\(name): \(String(decoding: n, as: UTF8.self))") }
            }
            return found
        }
        // The control: the plain export holds the string, so the search can find it.
        #expect(try !leaks(dir.sub("plain")).isEmpty)
        for root in ["npy", "jsonl", "backup", "out"] {
            let found = try leaks(dir.sub(root))
            #expect(found.isEmpty, "\(root): \(found)")
        }
    }
}
