// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Sextant

/// Snapshot archives, exports, backups and encrypted containers: read into the process's scratch database.
let backupTargets: [FuzzTarget] = [
    FuzzTarget(name: "archive", summary: "snapshot archive, checksums fixed up (its files' too): import, then restore the snapshot", run: { fuzzArchive($0, fix: true) }),
    FuzzTarget(name: "archive-raw", summary: "snapshot archive as is", run: { fuzzArchive($0, fix: false) }),
    FuzzTarget(name: "export", summary: "export directory (bundle), sizes and crcs fixed up: restore dry run, then restore", run: { fuzzExport($0, fix: true) }),
    FuzzTarget(name: "export-raw", summary: "export directory (bundle) as is", run: { fuzzExport($0, fix: false) }),
    FuzzTarget(name: "backup", summary: "backup chain (bundle), sizes and crcs fixed up: verify-backup, then restore", run: { fuzzBackup($0, fix: true) }),
    FuzzTarget(name: "backup-raw", summary: "backup chain (bundle) as is", run: { fuzzBackup($0, fix: false) }),
    FuzzTarget(name: "encrypted", summary: "encrypted container, header crc and key id fixed up: decrypt; and seal → open round trip", run: { fuzzEncrypted($0, fix: true) }),
    FuzzTarget(name: "encrypted-raw", summary: "encrypted container as is", run: { fuzzEncrypted($0, fix: false) }),
]

/// The fixed key of the encrypted targets and seeds.
let fuzzKey = try! EncryptionKey(bytes: [UInt8](repeating: 0x5A, count: 32))

func fuzzArchive(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.archive)
    let path = Scratch.file("input.sxa", bytes)
    let db = Scratch.database
    defer { Scratch.resetDatabase() }
    guard let info = try? db.importSnapshotArchive(path, as: "imported") else { return }
    FuzzProgress.parsed()
    // What the snapshot's files become: collections opened from them.
    if (try? db.restoreSnapshot(info.name)) != nil {
        for name in db.collectionNames() { _ = try? db.collection(name).count() }
    }
}

func fuzzExport(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let fixup: ((String, inout [UInt8]) -> Void)? = fix ? { name, bytes in Fixup.file(name, &bytes) } : nil
    let dir = FileBundle.materialize(data, as: "export", fixup: fixup)
    if fix { fixExportManifest(dir) }
    let db = Scratch.database
    defer { Scratch.resetDatabase() }
    if (try? db.restore(from: dir, options: RestoreOptions(into: "restored", dryRun: true))) != nil { FuzzProgress.parsed() }
    if (try? db.restore(from: dir, options: RestoreOptions(into: "restored"))) != nil {
        _ = try? db.collection("restored").count()
    }
}

func fuzzBackup(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let fixup: ((String, inout [UInt8]) -> Void)? = fix ? { name, bytes in Fixup.file(name, &bytes) } : nil
    let dir = FileBundle.materialize(data, as: "backup", fixup: fixup)
    if fix { fixBackupDescriptions(dir) }
    if Database.verifyBackup(at: dir).problems.isEmpty { FuzzProgress.parsed() }
    let db = Scratch.database
    defer { Scratch.resetDatabase() }
    _ = try? db.restoreBackup(from: dir)
}

func fuzzEncrypted(_ data: UnsafeRawBufferPointer, fix: Bool) {
    var bytes = Array(data)
    if fix && bytes.count >= 64 {
        for i in 0..<8 { bytes[16 + i] = fuzzKeyID[i] }
        bytes.put(bytes.crc(0..<60), at: 60)
    }
    let path = Scratch.file("input.enc", bytes)
    if (try? EncryptedFile.read(io: Scratch.io, path, key: fuzzKey, context: "snapshot-archive", what: "input")) != nil { FuzzProgress.parsed() }
    _ = try? EncryptedFile.copyDecrypting(io: Scratch.io, path, to: nil, key: fuzzKey, context: "snapshot-archive", salt: nil)
    if fix {
        // Past authentication: the content comes back as it went in, whatever it is.
        let sealed = Scratch.root + "/sealed.enc"
        if (try? EncryptedFile.write(io: Scratch.io, sealed, Array(data), key: fuzzKey, context: "fuzz")) != nil {
            let opened = try? EncryptedFile.read(io: Scratch.io, sealed, key: fuzzKey, context: "fuzz", what: "input")
            check(opened?.bytes == Array(data) && opened?.encrypted == true, "seal/open round trip changed \(data.count) bytes")
        }
    }
}

/// The key id bytes a container sealed with ``fuzzKey`` carries (header bytes 16..<24).
let fuzzKeyID: [UInt8] = {
    let path = Scratch.root + "/key-id.enc"
    _ = try! EncryptedFile.write(io: Scratch.io, path, [], key: fuzzKey, context: "fuzz")
    return Array(try! Scratch.io.readFile(path)[16..<24])
}()

func fileChecksum(_ path: String) -> (crc: UInt32, bytes: Int)? {
    guard let d = FileManager.default.contents(atPath: path) else { return nil }
    return (d.withUnsafeBytes { CRC32C.checksum($0) }, d.count)
}

/// Sets each chunk file's `bytes` (and, uncompressed, `content_bytes` and `crc32c`) to what the file holds.
func fixExportManifest(_ dir: String) {
    let path = dir + "/manifest.json"
    guard let d = FileManager.default.contents(atPath: path),
        var m = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
        let chunks = m["chunks"] as? [[String: Any]]
    else { return }
    let plain = (m["compression"] as? String) == "none"
    m["chunks"] = chunks.map { chunk -> [String: Any] in
        var chunk = chunk
        for key in ["vectors", "records_file"] {
            guard var f = chunk[key] as? [String: Any], let name = f["file"] as? String, !name.contains(".."),
                let (crc, n) = fileChecksum(dir + "/" + name)
            else { continue }
            f["bytes"] = n
            if plain {
                f["content_bytes"] = n
                f["crc32c"] = crc
            }
            chunk[key] = f
        }
        return chunk
    }
    if let out = try? JSONSerialization.data(withJSONObject: m) { _ = FileManager.default.createFile(atPath: path, contents: out) }
}

/// Sets each listed file's `bytes` and `crc32c` in every `BACKUP.json` to what the file holds.
func fixBackupDescriptions(_ dir: String) {
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("backup-") {
        let path = dir + "/" + name + "/BACKUP.json"
        guard let d = FileManager.default.contents(atPath: path),
            var m = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
            let files = m["files"] as? [[String: Any]]
        else { continue }
        m["files"] = files.map { entry -> [String: Any] in
            var entry = entry
            guard let p = entry["path"] as? String, let stored = entry["storedIn"] as? Int, !p.contains(".."),
                let (crc, n) = fileChecksum(dir + "/" + String(format: "backup-%06d", stored) + "/" + p)
            else { return entry }
            entry["bytes"] = n
            entry["crc32c"] = crc
            return entry
        }
        if let out = try? JSONSerialization.data(withJSONObject: m) { _ = FileManager.default.createFile(atPath: path, contents: out) }
    }
}
