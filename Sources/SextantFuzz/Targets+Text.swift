// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Sextant

/// JSON, JSON Lines, filters and `.npy` headers.
let textTargets: [FuzzTarget] = [
    FuzzTarget(name: "json", summary: "JSONParser; the validating scanner must agree with it; write → parse round-trips", run: fuzzJSON),
    FuzzTarget(name: "jsonl", summary: "JSON Lines reader + record lines as import/restore read them (both parsers agree)", run: fuzzJSONLines),
    FuzzTarget(name: "filter", summary: "filter JSON (Filter(jsonValue:)), compiled and matched against metadata after a NUL byte", run: fuzzFilter),
    FuzzTarget(name: "npy", summary: ".npy header and rows (NPYFile)", run: fuzzNPY),
]

func fuzzJSON(_ data: UnsafeRawBufferPointer) {
    let parsed = try? JSONParser.parse(data)
    if let parsed {
        FuzzProgress.parsed()
        // What the writer makes of a parsed value parses back to the same value.
        let again = try? JSONParser.parse(JSONWriter.write(parsed))
        check(again == parsed, "JSON write/parse round trip changed \(parsed)")
    }
    // The bulk-import path validates metadata without building it: it must accept exactly what the tree
    // parser accepts, and keep bytes that parse to the same value.
    var line: [UInt8] = Array(#"{"metadata":"#.utf8)
    line.append(contentsOf: data)
    line.append(UInt8(ascii: "}"))
    let tree = Result { () throws(SextantError) in try line.withBytes { (b) throws(SextantError) in try JSONLinesReader.parseRecordLine(b, lineNumber: 1) } }
    let raw = Result { () throws(SextantError) in
        try line.withBytes { (b) throws(SextantError) in try JSONLinesReader.parseRecordLineKeepingMetadataBytes(b, lineNumber: 1) }
    }
    compareRecordParses(tree, raw)
}

/// Both record parsers accept or refuse a line together, and agree on what it holds.
func compareRecordParses(_ tree: Result<ParsedRecordLine, SextantError>, _ raw: Result<ParsedRecordLine, SextantError>) {
    switch (tree, raw) {
    case (.success(let t), .success(let r)):
        check(t.id == r.id && t.vector == r.vector && t.document == r.document && t.hasDocumentKey == r.hasDocumentKey,
              "record parsers disagree on id, vector or document")
        if let bytes = r.metadataJSON {
            let value = try? JSONParser.parse(bytes)
            check(value == t.metadata, "validated metadata bytes parse to \(String(describing: value)), the tree parser made \(String(describing: t.metadata))")
        } else {
            check(t.metadata == nil || t.metadata == .null, "validating parser dropped metadata \(String(describing: t.metadata))")
        }
    case (.failure, .failure):
        break
    case (.success, .failure(let e)):
        check(false, "only the validating parser refused the line: \(e.message)")
    case (.failure(let e), .success):
        check(false, "only the tree parser refused the line: \(e.message)")
    }
}

func fuzzJSONLines(_ data: UnsafeRawBufferPointer) {
    let bytes = Array(data)
    var position = 0
    // Small, varying chunks exercise lines that span reads and the buffer's growth.
    let reader = JSONLinesReader(name: "input.jsonl", chunkSize: 1 + bytes.count % 61) { (out) throws(SextantError) -> Int in
        let n = min(out.count, bytes.count - position)
        if n > 0 { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.withUnsafeBytes { $0 }[position..<(position + n)])) }
        position += n
        return n
    }
    var lines = 0
    try? reader.forEachLine { line, number in
        lines += 1
        if lines == 1 { FuzzProgress.parsed() }
        check(number >= lines, "line number \(number) is behind the count \(lines)")
        check(!line.contains(UInt8(ascii: "\n")), "a line holds a newline")
        let tree = Result { () throws(SextantError) in try JSONLinesReader.parseRecordLine(line, lineNumber: number) }
        let raw = Result { () throws(SextantError) in try JSONLinesReader.parseRecordLineKeepingMetadataBytes(line, lineNumber: number) }
        compareRecordParses(tree, raw)
        return lines < 10_000
    }
}

func fuzzFilter(_ data: UnsafeRawBufferPointer) {
    let split = data.firstIndex(of: 0) ?? data.count
    guard let json = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: data[0..<split])),
        let filter = try? Filter(jsonValue: json),
        let compiled = try? CompiledFilter(filter)
    else { return }
    FuzzProgress.parsed()
    let metadata = split < data.count ? try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: data[(split + 1)...])) : nil
    for id in [RecordID.int(1), .string("a")] { _ = compiled.matches(id: id, metadata: metadata) }
}

func fuzzNPY(_ data: UnsafeRawBufferPointer) {
    let path = Scratch.file("input.npy", data)
    guard let npy = try? NPYFile(path: path) else { return }
    FuzzProgress.parsed()
    check(npy.rows >= 0 && npy.columns >= 0, "negative shape (\(npy.rows), \(npy.columns))")
    // Every row of a small array; the first and last of a large one (the data is all there: init checked).
    let rows = npy.rows * max(1, npy.columns) <= 1 << 16 ? Array(0..<npy.rows) : [0, npy.rows - 1]
    for r in rows where r >= 0 {
        let row = npy.row(r)
        check(row.count == npy.columns, "row \(r) has \(row.count) values, not \(npy.columns)")
    }
}
