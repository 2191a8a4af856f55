// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Sextant

/// `sextant-fuzz seed DIR`: the seed corpora, `DIR/<target>/<name>`, cut from a small database Sextant
/// writes here (so they follow the current formats), plus a few hand-written JSON inputs.
func writeSeeds(into out: String) throws {
    let fm = FileManager.default
    let work = NSTemporaryDirectory() + "/sextant-fuzz-seed-\(getpid())"
    try? fm.removeItem(atPath: work)
    try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: work) }
    func put(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
        try fm.createDirectory(atPath: out + "/" + target, withIntermediateDirectories: true)
        _ = fm.createFile(atPath: out + "/" + target + "/" + name, contents: Data(bytes))
    }
    func read(_ path: String) -> [UInt8] { Array(fm.contents(atPath: path) ?? Data()) }
    func files(under dir: String) -> [String] {
        (fm.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter { !(fm.isDirectory(dir + "/" + $0)) }.sorted()
    }

    // A collection with every kind of file: segment, deletion generation, graph + int8 codes, payload index, log.
    let db = try Database.open(at: work + "/db")
    let c = try db.createCollection(
        "docs", dimension: 8, metric: .cosine,
        index: IndexConfiguration(neighborsPerNode: 4, indexingSearchCount: 16, minimumRowsForGraph: 1, quantization: .int8))
    try c.createPayloadIndex("tag", type: .keyword)
    try c.createPayloadIndex("n", type: .integer)
    var records: [Record] = []
    for i in 0..<16 {
        let v = (0..<8).map { j in Float((i * 7 + j * 3) % 11) - 5 + 0.5 }
        let id: RecordID = i % 4 == 0 ? .string("doc-\(i)") : .int(UInt64(i))
        records.append(Record(id: id, vector: v, metadata: ["tag": i % 2 == 0 ? "a" : "b", "n": .int(Int64(i)), "t": "hello world"], document: i % 3 == 0 ? nil : "the quick fox \(i)"))
    }
    try c.upsert(records)
    try c.flush()
    _ = try c.delete([.int(1), .int(2)])
    try c.upsert(.int(50), vector: [1, 0, 0, 0, 0, 0, 0, 1], metadata: ["n": 50])
    try c.flush()  // a deletion generation for the first segment, and a second segment
    try c.waitForIndexing()
    try c.upsert(.int(100), vector: [1, 2, 3, 4, 5, 6, 7, 8], metadata: ["tag": "c"], document: "tail")  // stays in the log
    _ = try c.delete([.int(3)])

    let dbFiles = files(under: work + "/db")
    for f in dbFiles {
        let b = read(work + "/db/" + f)
        let base = (f as NSString).lastPathComponent
        switch (f as NSString).pathExtension {
        case "seg": for t in ["segment", "segment-raw"] { try put(t, base, b) }
        case "del": for t in ["deletion", "deletion-raw"] { try put(t, base, b) }
        case "hnsw": for t in ["hnsw", "hnsw-raw"] { try put(t, base, b) }
        case "q8": for t in ["q8", "q8-raw"] { try put(t, base, b) }
        case "pidx": for t in ["pidx", "pidx-raw"] { try put(t, base, b) }
        case "log": for t in ["wal", "wal-raw"] { try put(t, base, b) }
        default:
            if base.hasPrefix("MANIFEST-") {
                try put("manifest-raw", base, b)
                let length = Int(b.u32(at: 12))
                try put("manifest", base + ".json", Array(b[16..<(16 + length)]))
            }
        }
    }

    // Snapshot archives, plain and encrypted.
    _ = try db.createSnapshot("s1")
    try db.archiveSnapshot("s1", to: work + "/s1.sxa")
    for t in ["archive", "archive-raw"] { try put(t, "s1.sxa", read(work + "/s1.sxa")) }
    try db.archiveSnapshot("s1", to: work + "/s1.enc", encryptionKey: fuzzKey)
    for t in ["encrypted", "encrypted-raw"] { try put(t, "s1.sxa.enc", read(work + "/s1.enc")) }

    // Exports (npy + jsonl, plain and gzip), as bundles; their records and vectors files for jsonl and npy.
    for (format, compression) in [(ExportFormat.npy, Compression.none), (.jsonl, .none), (.npy, .gzip)] {
        let dir = work + "/export-\(format.rawValue)-\(compression.rawValue)"
        try c.export(to: dir, options: ExportOptions(format: format, compression: compression))
        let bundle = FileBundle.join(files(under: dir).map { ($0, read(dir + "/" + $0)) })
        for t in ["export", "export-raw"] { try put(t, "\(format.rawValue)-\(compression.rawValue).bundle", bundle) }
        for f in files(under: dir) where compression == .none {
            if f.hasSuffix(".jsonl") { try put("jsonl", format.rawValue + "-" + f, read(dir + "/" + f)) }
            if f.hasSuffix(".npy") { try put("npy", f, read(dir + "/" + f)) }
        }
    }

    // A backup chain: a full backup and an increment.
    try db.backup(to: work + "/chain")
    try c.upsert(.string("late"), vector: [8, 7, 6, 5, 4, 3, 2, 1])
    try c.flush()
    try db.backup(to: work + "/chain", incremental: true)
    let chain = FileBundle.join(files(under: work + "/chain").map { ($0, read(work + "/chain/" + $0)) })
    for t in ["backup", "backup-raw"] { try put(t, "chain.bundle", chain) }
    db.close()

    // Hand-written JSON, filters, record lines and .npy headers.
    let json = [
        #"{"a":[1,2.5,-3e2,true,false,null],"b":{"c":"\u00e9\ud83d\ude00\n"},"d":""}"#, "[]", "12345678901234567890", "-0.0",
        #""\\\/\b\f\n\r\t""#,
    ]
    for (i, s) in json.enumerated() { try put("json", "json-\(i)", Array(s.utf8)) }
    let filters = [
        #"{"must":[{"key":"section","match":{"value":"games"}},{"key":"n","range":{"gte":10,"lt":20.5}}],"should":[{"key":"tags","match":{"any":["a","b"]}},{"is_empty":{"key":"obj"}}],"must_not":[{"has_id":[1,"x"]},{"must":[{"key":"flag","match":{"value":true}}]}],"min_should":{"conditions":[{"key":"when","range":{"gt":"2024-01-01T00:00:00Z"}},{"is_null":{"key":"n"}}],"min_count":1}}"#
            + "\0" + #"{"section":"games","n":12,"tags":["a"],"when":"2024-02-01T00:00:00Z"}"#,
        #"{"must":[{"key":"t","match":{"text":"hello world"}},{"key":"n","match":{"except":[1,2]}}]}"# + "\0" + #"{"t":"Hello, World!","n":3}"#,
    ]
    for (i, s) in filters.enumerated() { try put("filter", "filter-\(i)", Array(s.utf8)) }
    try put("jsonl", "handwritten.jsonl", Array((#"{"id":1,"vector":[1,2.5e-3],"metadata":{"k":[1,{"x":null}]},"document":"d"}"# + "\r\n\n" + #"{"id":"s","vector":[],"document":null}"# + "\n").utf8))
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }
}
