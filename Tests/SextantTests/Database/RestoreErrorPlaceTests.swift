// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Issue 10: restore errors must name the file (and row or line) actually at fault — a NaN in
/// `vectors-000000.npy` was reported as `records-000000.jsonl: line 6`, and merge restores named the
/// decompressed copies in the database's work directory.
@Suite struct RestoreErrorPlaceTests {
    /// An export of 12 records (4-d, one chunk), whose file `name` is then rewritten by `edit` with the
    /// manifest's size and checksum fixed, so the content is "valid" and only the edit is wrong.
    func damagedExport(_ dir: TemporaryDirectory, file name: String, edit: (inout Data) throws -> Void) throws -> Database {
        var config = Configuration()
        config.backgroundWork = false
        let db = try Database.open(at: dir.sub("db"), configuration: config)
        let c = try db.createCollection("src", dimension: 4, metric: .euclidean)
        try c.upsert((0..<12).map { Record(id: .int(UInt64($0)), vector: [Float($0), 1, 2, 3], metadata: ["i": .int(Int64($0))], document: "d\($0)") })
        try c.export(to: dir.sub("out"))
        let path = dir.sub("out/" + name)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try edit(&bytes)
        try bytes.write(to: URL(fileURLWithPath: path))
        let manifestPath = dir.sub("out/manifest.json")
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as! [String: Any]
        var chunks = manifest["chunks"] as! [[String: Any]]
        let info: [String: Any] = ["file": name, "bytes": bytes.count, "content_bytes": bytes.count, "crc32c": Int(CRC32C.checksum(Array(bytes)))]
        for i in chunks.indices {
            if (chunks[i]["records_file"] as! [String: Any])["file"] as! String == name { chunks[i]["records_file"] = info }
            if let v = chunks[i]["vectors"] as? [String: Any], v["file"] as! String == name { chunks[i]["vectors"] = info }
        }
        manifest["chunks"] = chunks
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))
        return db
    }

    func restoreError(_ db: Database, _ options: RestoreOptions, from directory: String) -> SextantError? {
        do {
            try db.restore(from: directory, options: options)
            Issue.record("the damaged export was restored")
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [RestoreMode.new, .merge])
    func aNaNInTheVectorsFileIsReportedThere(mode: RestoreMode) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try damagedExport(dir, file: "vectors-000000.npy") { bytes in
            // Row 5, value 2: the float32 payload starts after the 128-byte header (NumPy 1.0, padded to 64).
            let offset = bytes.count - 12 * 16 + 5 * 16 + 2 * 4
            bytes.replaceSubrange(offset..<offset + 4, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Data($0) })
        }
        defer { db.close() }
        if mode == .merge { _ = try db.createCollection("dst", dimension: 4, metric: .euclidean) }
        let e = try #require(restoreError(db, RestoreOptions(into: "dst", mode: mode), from: dir.sub("out")))
        #expect(e.code == .invalidVector, "\(e.message)")
        #expect(e.message.contains(dir.sub("out/vectors-000000.npy") + ": row 5"), "\(e.message)")
        #expect(e.message.contains("vector[2] is NaN"), "\(e.message)")
        #expect(!e.message.contains("records-000000.jsonl") && !e.message.contains(".tmp/"), "\(e.message)")
        if mode == .merge { #expect(try db.collection("dst").count() == 0) } else { #expect(!db.collectionNames().contains("dst")) }
        #expect(db.collectionNames().allSatisfy { !$0.hasPrefix("__staging") })
    }

    @Test(arguments: [RestoreMode.new, .merge])
    func aBadRecordIsReportedAtItsLine(mode: RestoreMode) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try damagedExport(dir, file: "records-000000.jsonl") { bytes in
            var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            lines[3] = #"{"id":"","metadata":{}}"#  // an empty string id
            bytes = Data((lines.joined(separator: "\n") + "\n").utf8)
        }
        defer { db.close() }
        if mode == .merge { _ = try db.createCollection("dst", dimension: 4, metric: .euclidean) }
        let e = try #require(restoreError(db, RestoreOptions(into: "dst", mode: mode), from: dir.sub("out")))
        #expect(e.message.contains(dir.sub("out/records-000000.jsonl") + ": line 4"), "\(e.message)")
        #expect(!e.message.contains(".tmp/"), "\(e.message)")
    }

    /// A dry run parses the records files' ids; a malformed line names the file and line (it named neither).
    @Test func aDryRunNamesTheMalformedLine() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try damagedExport(dir, file: "records-000000.jsonl") { bytes in
            var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            lines[6] = #"{"id":6,"metadata":{"#
            bytes = Data((lines.joined(separator: "\n") + "\n").utf8)
        }
        defer { db.close() }
        _ = try db.createCollection("dst", dimension: 4, metric: .euclidean)
        let e = try #require(restoreError(db, RestoreOptions(into: "dst", mode: .merge, dryRun: true), from: dir.sub("out")))
        #expect(e.code == .parse, "\(e.message)")
        #expect(e.message.contains(dir.sub("out/records-000000.jsonl") + ": line 7"), "\(e.message)")
    }
}
