// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import OrderedCollections
@testable import Sextant
import SextantTestSupport
import Testing

/// A Python with numpy, for the interop test: $SEXTANT_PYTHON (set by .ci/run to its venv), else python3.
let pythonWithNumpy: String? = {
    let env = ProcessInfo.processInfo.environment
    let onPath: [String] = (env["PATH"] ?? "").split(separator: ":").map { String($0) + "/python3" }
    let candidates: [String] = [env["SEXTANT_PYTHON"]].compactMap { $0 } + onPath + ["/usr/bin/python3"]
    for python in candidates where FileManager.default.isExecutableFile(atPath: python) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import numpy"]
        p.standardError = FileHandle.nullDevice
        if (try? p.run()) != nil {
            p.waitUntilExit()
            if p.terminationStatus == 0 { return python }
        }
    }
    return nil
}()

@Suite struct ExportRestoreTests {
    /// Records with every kind of id, metadata and document, across segments and the memtable, some deleted.
    func populate(_ db: Database, name: String = "src", count: Int = 700) throws -> VectorCollection {
        let c = try db.createCollection(name, dimension: 12, metric: .cosine)
        try c.createPayloadIndex("group", type: .keyword)
        let vectors = randomVectors(count, dimension: 12, seed: 4)
        var records: [Record] = []
        for i in 0..<count {
            let id: RecordID = i % 5 == 0 ? .string("s-\(i)-ü\"q") : .int(UInt64(i) * 7)
            let metadata: JSONValue? = i % 4 == 0 ? nil : [
                "group": .string("g\(i % 3)"), "n": .int(Int64(i)), "x": .double(Double(i) / 3), "tags": ["a", .null, true],
                "nested": ["deep": ["k": .string("line\nbreak")]],
            ]
            var v = vectors[i]
            if i == 1 { v[0] = -0.0 }
            if i == 2 { v[1] = Float.leastNonzeroMagnitude }
            records.append(Record(id: id, vector: v, metadata: metadata, document: i % 3 == 0 ? nil : "doc \(i) — naïve 東京"))
        }
        try c.upsert(Array(records[0..<300]))
        try c.flush()
        try c.upsert(Array(records[300...]))
        try c.delete([.int(7), .string("s-5-ü\"q")])
        return c
    }

    func everything(_ c: VectorCollection) throws -> [StoredRecord] {
        try c.scroll(limit: 1_000_000, include: .all).records
    }

    func bitsEqual(_ a: [StoredRecord], _ b: [StoredRecord]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.id == y.id, x.metadata == y.metadata, x.document == y.document,
                x.vector?.map(\.bitPattern) == y.vector?.map(\.bitPattern)
            else { return false }
        }
        return true
    }

    @Test(arguments: ExportFormat.allCases, Compression.allCases)
    func exportThenRestoreIsBitExact(format: ExportFormat, compression: Compression) throws {
        if compression == .zstd, (try? compression.checkAvailable()) == nil { return }  // no libzstd here: the error is tested below
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db)
        let before = try everything(c)
        var events = 0
        let summary = try c.export(to: dir.sub("out"), options: ExportOptions(format: format, compression: compression, chunkRecords: 256)) { _ in events += 1 }
        #expect(summary.records == before.count)
        #expect(events >= 3)
        #expect(!FileManager.default.fileExists(atPath: dir.sub("out.partial")))
        let restored = try db.restore(from: dir.sub("out"), options: RestoreOptions(into: "copy"))
        #expect(restored.added == before.count && restored.records == before.count)
        let copy = try db.collection("copy")
        #expect(bitsEqual(try everything(copy), before))
        #expect(copy.payloadIndexes == c.payloadIndexes)
        #expect(try copy.count(filter: .must(.match("group", "g1"))) == (try c.count(filter: .must(.match("group", "g1")))))
        db.close()
        #expect(try Database.verify(at: dir.sub("db")).isClean)
    }

    /// A restore writes its segments directly (here 100 rows each): the copy is bit-exact, searches like
    /// the source, reopens clean, and its segments carry their payload indexes. An export holding an id
    /// twice — within one segment or across two — is refused, and nothing is created.
    @Test func restoreWritesSegmentsDirectlyAndRefusesRepeatedIDs() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.maxSegmentBytes = 12 * 4 * 100
        var db = try Database.open(at: dir.sub("db"), configuration: config)
        let c = try populate(db)
        let before = try everything(c)
        try c.export(to: dir.sub("out"), options: ExportOptions(chunkRecords: 150))
        let summary = try db.restore(from: dir.sub("out"), options: RestoreOptions(into: "copy"))
        #expect(summary.added == before.count)
        let copy = try db.collection("copy")
        #expect(bitsEqual(try everything(copy), before))
        let info = try copy.info()
        #expect(info.segments.count == (before.count + 99) / 100)
        #expect(info.segments.allSatisfy { $0.payloadIndexBytes > 0 })
        for q in randomVectors(5, dimension: 12, seed: 99) {
            let a = try c.search(q, limit: 10).map(\.id), b = try copy.search(q, limit: 10).map(\.id)
            #expect(a == b)
        }
        #expect(try copy.search(text: "naïve", limit: 1000).count == (try c.search(text: "naïve", limit: 1000)).count)
        db.close()
        #expect(try Database.verify(at: dir.sub("db")).isClean)
        db = try Database.open(at: dir.sub("db"), configuration: config)
        defer { db.close() }
        #expect(bitsEqual(try everything(try db.collection("copy")), before))

        /// Rewrites line `line` of a records file with the id of another record, fixing the manifest's
        /// size and checksum so only the repeat is wrong.
        func repeatID(in file: String, line: Int, idOf other: String) throws {
            let path = dir.sub("out/" + file)
            var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let otherID = try JSONParser.parse(Array(other.utf8))["id"]!
            var record = try JSONParser.parse(Array(lines[line].utf8))
            if case .object(var fields) = record {
                fields["id"] = otherID
                record = .object(fields)
            }
            lines[line] = String(decoding: JSONWriter.write(record), as: UTF8.self)
            let bytes = Array(lines.joined(separator: "\n").utf8)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let manifestPath = dir.sub("out/manifest.json")
            var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as! [String: Any]
            var chunks = manifest["chunks"] as! [[String: Any]]
            for i in chunks.indices where (chunks[i]["records_file"] as! [String: Any])["file"] as! String == file {
                chunks[i]["records_file"] = ["file": file, "bytes": bytes.count, "content_bytes": bytes.count, "crc32c": Int(CRC32C.checksum(bytes))]
            }
            manifest["chunks"] = chunks
            try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))
        }
        let first = try String(contentsOfFile: dir.sub("out/records-000000.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        try repeatID(in: "records-000000.jsonl", line: 20, idOf: first[3])  // same segment
        #expect(throws: SextantError.self) { try db.restore(from: dir.sub("out"), options: RestoreOptions(into: "dup")) }
        try db.collection("src").export(to: dir.sub("out2"), options: ExportOptions(chunkRecords: 150))
        try FileManager.default.removeItem(atPath: dir.sub("out"))
        try FileManager.default.moveItem(atPath: dir.sub("out2"), toPath: dir.sub("out"))
        try repeatID(in: "records-000003.jsonl", line: 7, idOf: first[3])  // a later segment
        do {
            try db.restore(from: dir.sub("out"), options: RestoreOptions(into: "dup"))
            Issue.record("an export with a repeated id was restored")
        } catch {
            #expect(error.code == .corrupt && error.message.contains("appears twice") && error.message.contains(dir.sub("out")), "\(error.message)")
        }
        #expect(!db.collectionNames().contains("dup"))
        #expect(db.collectionNames().allSatisfy { !$0.hasPrefix("__staging") })
    }

    @Test func filteredExportAndRestoreModes() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db)
        let g0 = Filter.must(.match("group", "g0"))
        try c.export(to: dir.sub("g0"), options: ExportOptions(compression: .gzip, filter: g0))
        let g0Count = try c.count(filter: g0)
        #expect(try Database.loadExportManifest(PosixFileIO(), dir.sub("g0")).records == g0Count)

        // new: refuses an existing collection.
        #expect(throws: SextantError.self) { try db.restore(from: dir.sub("g0"), options: RestoreOptions(into: "src")) }
        // dry run: counts, changes nothing.
        let before = try everything(c)
        let dry = try db.restore(from: dir.sub("g0"), options: RestoreOptions(into: "src", mode: .merge, onConflict: .skip, dryRun: true))
        #expect(dry.conflicts == g0Count && dry.skipped == g0Count && dry.added == 0 && dry.dryRun)
        #expect(bitsEqual(try everything(try db.collection("src")), before))
        // merge, fail: aborts, nothing changes, writes work again afterwards.
        do {
            try db.restore(from: dir.sub("g0"), options: RestoreOptions(into: "src", mode: .merge, onConflict: .fail))
            Issue.record("a conflicting merge with --on-conflict fail succeeded")
        } catch {
            #expect(error.code == .alreadyExists && error.message.contains("nothing was restored"), "\(error.message)")
        }
        #expect(bitsEqual(try everything(try db.collection("src")), before))
        try db.collection("src").upsert(.int(999_999), vector: [Float](repeating: 1, count: 12))
        try db.collection("src").delete([.int(999_999)])
        // merge, skip / overwrite.
        let full = dir.sub("full")
        try db.collection("src").export(to: full)
        try db.createCollection("other", dimension: 12, metric: .cosine)
        try db.collection("other").upsert([Record(id: .int(14), vector: [Float](repeating: 2, count: 12), metadata: ["mine": true])])
        var s = try db.restore(from: full, options: RestoreOptions(into: "other", mode: .merge, onConflict: .skip))
        #expect(s.conflicts == 1 && s.skipped == 1 && s.added == before.count - 1)
        #expect(try db.collection("other").get([.int(14)]).first?.metadata == ["mine": true])
        s = try db.restore(from: full, options: RestoreOptions(into: "other", mode: .merge, onConflict: .overwrite))
        #expect(s.conflicts == before.count && s.overwritten == before.count && s.added == 0)
        #expect(try db.collection("other").get([.int(14)]).first?.metadata != ["mine": true])
        #expect(try db.collection("other").count() == before.count)
        // override: the collection becomes exactly the export.
        s = try db.restore(from: dir.sub("g0"), options: RestoreOptions(into: "other", mode: .override))
        #expect(try db.collection("other").count() == g0Count)
        // remap: integer ids get fresh values, strings stay; the mapping is written.
        let stringIDs = try everything(try db.collection("other")).filter { if case .string = $0.id { true } else { false } }.count
        s = try db.restore(
            from: dir.sub("g0"), options: RestoreOptions(into: "other", mode: .merge, onConflict: .skip, remapIDs: true, mappingFile: dir.sub("map.jsonl")))
        #expect(s.conflicts == stringIDs && s.skipped == stringIDs)  // string ids are kept, so they meet themselves
        let after = try db.collection("other").count()
        #expect(after == 2 * g0Count - stringIDs)
        let lines = try String(contentsOfFile: dir.sub("map.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == g0Count - stringIDs)
        #expect(db.collectionNames().allSatisfy { !$0.hasPrefix("__staging") })
    }

    @Test func transferStreamsBetweenDatabasesWithRestoreModes() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let a = try Database.open(at: dir.sub("a"))
        defer { a.close() }
        let b = try Database.open(at: dir.sub("b"))
        defer { b.close() }
        let src = try populate(a)
        let before = try everything(src)
        var s = try b.transfer(from: src)
        #expect(s.added == before.count)
        #expect(bitsEqual(try everything(try b.collection("src")), before))
        #expect(try b.collection("src").payloadIndexes == src.payloadIndexes)
        #expect(throws: SextantError.self) { try b.transfer(from: src) }  // new: exists
        #expect(throws: SextantError.self) { try a.transfer(from: src) }  // onto itself
        try b.collection("src").delete([.int(14)])
        s = try b.transfer(from: src, options: RestoreOptions(mode: .merge, onConflict: .skip))
        #expect(s.added == 1 && s.skipped == before.count - 1)
        #expect(bitsEqual(try everything(try b.collection("src")), before))
        s = try a.transfer(from: src, into: "copy", options: RestoreOptions(dryRun: true))
        #expect(s.dryRun && !a.collectionNames().contains("copy"))
        try a.transfer(from: src, into: "copy")
        #expect(bitsEqual(try everything(try a.collection("copy")), before))
        // Cancelled: nothing appears.
        do {
            try a.transfer(from: src, into: "cancelled") { e in if e.records > 100 { throw CancellationError() } }
            Issue.record("not cancelled")
        } catch {
            #expect(error.code == .cancelled)
        }
        #expect(!a.collectionNames().contains("cancelled"))
        #expect(a.collectionNames().allSatisfy { !$0.hasPrefix("__staging") })
    }

    @Test func aDamagedOrUnfinishedExportIsRefusedNamingTheFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db)
        try c.export(to: dir.sub("out"), options: ExportOptions(chunkRecords: 200))
        // Flip one byte of a vectors chunk.
        let victim = dir.sub("out/vectors-000001.npy")
        var data = try Data(contentsOf: URL(fileURLWithPath: victim))
        data[data.count - 5] ^= 0x20
        try data.write(to: URL(fileURLWithPath: victim))
        for mode in [RestoreMode.new, .override, .merge] {
            do {
                try db.restore(from: dir.sub("out"), options: RestoreOptions(into: mode == .new ? "fresh" : "src", mode: mode, onConflict: .overwrite))
                Issue.record("a damaged export was restored (\(mode))")
            } catch {
                #expect(error.code == .corrupt && error.message.contains("vectors-000001.npy"), "\(error.message)")
            }
        }
        #expect(!db.collectionNames().contains("fresh"))
        #expect(db.collectionNames().allSatisfy { !$0.hasPrefix("__staging") })
        #expect(try c.count() == 698)
        // A cancelled export leaves nothing restore would accept.
        do {
            try c.export(to: dir.sub("cancelled"), options: ExportOptions(chunkRecords: 100)) { e in
                if e.records >= 300 { throw CancellationError() }
            }
            Issue.record("the export was not cancelled")
        } catch {
            #expect(error.code == .cancelled)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.sub("cancelled")))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("cancelled.partial")))
        // A directory without manifest.json (an export killed before its end) is refused.
        try FileManager.default.createDirectory(atPath: dir.sub("half"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir.sub("out/records-000000.jsonl"), toPath: dir.sub("half/records-000000.jsonl"))
        #expect(throws: SextantError.self) { try db.restore(from: dir.sub("half"), options: RestoreOptions(into: "half")) }
    }

    @Test(.enabled(if: pythonWithNumpy != nil, "needs python3 with numpy (.ci/run provides one)"))
    func numpyAndPythonJSONReadTheExport() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        let c = try populate(db)
        try c.export(to: dir.sub("npy"), options: ExportOptions(compression: .gzip, chunkRecords: 300))
        try c.export(to: dir.sub("jsonl"), options: ExportOptions(format: .jsonl))
        let before = try everything(c)
        // Python writes back what it read: ids, vectors (as float32 bits), metadata, documents.
        let script = """
            import gzip, json, struct, sys, numpy as np
            def check(d):
                m = json.load(open(d + "/manifest.json"))
                out = []
                for ch in m["chunks"]:
                    opener = gzip.open if m["compression"] == "gzip" else open
                    recs = [json.loads(l) for l in opener(d + "/" + ch["records_file"]["file"], "rt", encoding="utf-8")]
                    if ch.get("vectors"):
                        with opener(d + "/" + ch["vectors"]["file"], "rb") as f:
                            v = np.load(f)
                        assert v.dtype == np.float32 and v.shape == (ch["records"], m["collection"]["dimension"]), v.shape
                        for r, row in zip(recs, v): r["vector"] = [int(x) for x in row.view(np.uint32)]
                    else:
                        for r in recs: r["vector"] = [struct.unpack("<I", struct.pack("<f", x))[0] for x in r["vector"]]
                    out += recs
                return out
            a, b = check(sys.argv[1]), check(sys.argv[2])
            assert a == b, "npy and jsonl layouts disagree"
            json.dump(a, open(sys.argv[3], "w"))
            """
        try script.write(toFile: dir.sub("check.py"), atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: pythonWithNumpy!)
        p.arguments = [dir.sub("check.py"), dir.sub("npy"), dir.sub("jsonl"), dir.sub("seen.json")]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        guard p.terminationStatus == 0 else { return }
        let seen = try JSONParser.parse(try String(contentsOfFile: dir.sub("seen.json"), encoding: .utf8))
        guard case .array(let rows) = seen else { Issue.record("not an array"); return }
        var byID: [RecordID: JSONValue] = [:]
        for r in rows {
            switch r["id"] {
            case .int(let v)?: byID[.int(UInt64(v))] = r
            case .string(let s)?: byID[.string(s)] = r
            default: Issue.record("bad id \(String(describing: r["id"]))")
            }
        }
        #expect(byID.count == before.count)
        for rec in before {
            guard let r = byID[rec.id] else { Issue.record("python did not see \(rec.id)"); continue }
            #expect(r["metadata"] == rec.metadata)
            #expect(r["document"]?.stringValue == rec.document)
            #expect(r["vector"]?.arrayValue?.compactMap(\.intValue).map { UInt32($0) } == rec.vector?.map(\.bitPattern))
        }
    }

    /// Plain files from other tools: numpy's float16 and float64 arrays are converted to float32 on import,
    /// with ids and metadata from JSON Lines written by Python's json.
    @Test(.enabled(if: pythonWithNumpy != nil, "needs python3 with numpy (.ci/run provides one)"))
    func importsFloat16AndFloat64ArraysWrittenByNumpy() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let script = """
            import json, sys, numpy as np
            rng = np.random.default_rng(5)
            x = rng.standard_normal((50, 6))
            np.save(sys.argv[1] + "/f64.npy", x.astype(np.float64))
            np.save(sys.argv[1] + "/f16.npy", x.astype(np.float16))
            with open(sys.argv[1] + "/records.jsonl", "w") as f:
                for i in range(50):
                    f.write(json.dumps({"id": "p%d" % i, "metadata": {"i": i}, "document": "row %d" % i}) + "\\n")
            json.dump({"f64": x.astype(np.float32).tolist(), "f16": x.astype(np.float16).astype(np.float32).tolist()}, open(sys.argv[1] + "/expect.json", "w"))
            """
        try script.write(toFile: dir.sub("make.py"), atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: pythonWithNumpy!)
        p.arguments = [dir.sub("make.py"), dir.path]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let expect = try JSONParser.parse(try String(contentsOfFile: dir.sub("expect.json"), encoding: .utf8))
        let db = try Database.open(at: dir.sub("db"))
        defer { db.close() }
        for kind in ["f64", "f16"] {
            let c = try db.createCollection(kind, dimension: 6, metric: .euclidean)
            #expect(try c.importRecords(from: .npy(vectors: dir.sub("\(kind).npy"), ids: nil, records: dir.sub("records.jsonl"))) == 50)
            let rows = try #require(expect[kind]?.arrayValue)
            for i in [0, 17, 49] {
                let r = try #require(try c.get([.string("p\(i)")]).first)
                let want = (rows[i].arrayValue ?? []).compactMap(\.doubleValue).map { Float($0) }
                #expect(r.vector == want, "\(kind) row \(i)")
                #expect(r.metadata == ["i": .int(Int64(i))] && r.document == "row \(i)")
            }
        }
    }

    /// A restore cut short by a crash leaves its hidden collection behind; the next open removes it and
    /// everything else stays.
    @Test func anOpenRemovesTheStagingCollectionOfAnInterruptedRestore() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        do {
            let db = try Database.open(at: dir.path)
            let c = try populate(db)
            let staging = try db.createStagingCollection(dimension: 12, metric: .cosine, index: IndexConfiguration())
            try staging.upsert([Record(id: .int(1), vector: [Float](repeating: 1, count: 12))])
            try staging.flush()
            #expect(db.collectionNames().contains(staging.name))
            _ = c
            db.close()  // as if the process died before the swap
        }
        let db = try Database.open(at: dir.path)
        #expect(db.collectionNames() == ["src"])
        #expect(try db.collection("src").count() == 698)
        db.close()
        #expect(try Database.verify(at: dir.path).isClean)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/collections").count == 1)
    }

    /// Crafted `.npy` headers (found by the npy fuzz target; Fuzz/Regressions/npy) are parse errors: a negative
    /// dimension used to pass the size check, a huge one to trap in it, and a huge header length made a
    /// streaming restore allocate it.
    @Test(arguments: [
        ("(-5, 8)", 1, 0, "the shape (-5, 8) has a negative dimension"),
        ("(4611686018427387904, 4)", 1, 0, "the shape (4611686018427387904, 4) is too large"),
        ("(2, 8)", 2, 0x7FFF_FFF0, "the .npy header is 2147483644 bytes long (at most 1048576 are read)"),
    ])
    func craftedNPYHeadersAreRefused(shape: String, major: UInt8, claimedLength: Int, message: String) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }\n".utf8)
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
        let length = claimedLength > 0 ? claimedLength : dict.count
        if major == 1 {
            bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        } else {
            bytes += (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) }
        }
        bytes += dict + [UInt8](repeating: 0, count: 64)
        let path = dir.sub("crafted.npy")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            _ = try NPYFile(path: path)
            Issue.record("accepted the shape \(shape)")
        } catch {
            #expect(error.code == .parse)
            #expect(error.message == "\(path): \(message)")
        }
    }
}
