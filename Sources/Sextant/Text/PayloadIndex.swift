// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The kinds of payload index a field can have.
public enum PayloadIndexType: String, Sendable, Hashable, Codable, CaseIterable {
    /// Strings: `match` value / any / except with strings.
    case keyword
    /// Numbers: `match` with integers, and `range` (integer and fractional values alike).
    case integer
    /// Numbers: `range` (integer and fractional values alike), and `match` with integers.
    case float
    /// Booleans: `match` with true / false.
    case bool
    /// RFC 3339 datetime strings: `range` with datetime bounds.
    case datetime
    /// Words of strings (``Tokenizer``): `match` text.
    case text
}

/// A field and the index kept for it.
public struct PayloadIndexSpec: Sendable, Hashable, Codable {
    public var key: String
    public var type: PayloadIndexType
    public init(key: String, type: PayloadIndexType) {
        self.key = key
        self.type = type
    }
}

/// The index file of a segment: `<segment id>.<generation>.pidx`. It holds the BM25 postings of the
/// documents (always) and one index per payload field the collection indexes (as of the file's writing).
///
/// ```
/// file     := header descriptor data crc:u32
/// header   := magic "SEXTPIDX" | version:u32 | segmentID:u64 | rowCount:u64 | descriptorLength:u32  (32 bytes)
/// descriptor := JSON: {"fields":[{"key":…,"type":…,"sections":[[offset,length],…]},…]}, then zero padding to 8
/// data     := sections, each 8-byte aligned, at offsets relative to the file start
/// crc      := CRC-32C of everything before it (checked once, before first use)
/// ```
/// Postings fields (documents, keyword, bool, text) have sections: terms (UTF-8, sorted bytewise) |
/// termEnds (u32 × T: end offset of each term) | postEnds (u64 × T: end index of each term's rows) |
/// rows (u32 × P, ascending per term) — documents add tfs (u32 × P) and docLengths (u32 × rowCount).
/// Numeric fields (integer, float, datetime) have: values (f64 × N, ascending) | rows (u32 × N) |
/// ints (i64 × N: the exact integer, when isInt) | isInt (u8 × N).
package enum PayloadIndexFile {
    package static let magic: [UInt8] = Array("SEXTPIDX".utf8)
    package static let version: UInt32 = 1
    /// The pseudo-key of the documents' postings.
    package static let documentsKey = "\u{0}documents"

    package static func name(_ segmentID: UInt64, generation: UInt64) -> String {
        hex16(segmentID) + "." + hex16(generation) + ".pidx"
    }

    /// Builds the index of `specs` (plus documents) over the rows of `segment` and writes it atomically.
    package static func write(segment: Segment, specs: [PayloadIndexSpec], tokenizer: Tokenizer, io: any FileIO, path: String) throws(SextantError) {
        let n = segment.rowCount
        var postingsBuilders: [PostingsBuilder] = []
        var numericBuilders: [NumericBuilder] = []
        var fieldOrder: [(spec: PayloadIndexSpec, isPostings: Bool, slot: Int)] = []
        var paths: [KeyPath] = []
        for spec in specs {
            paths.append(try KeyPath(spec.key))
            switch spec.type {
            case .keyword, .bool, .text:
                fieldOrder.append((spec, true, postingsBuilders.count))
                postingsBuilders.append(PostingsBuilder(withFrequencies: false))
            case .integer, .float, .datetime:
                fieldOrder.append((spec, false, numericBuilders.count))
                numericBuilders.append(NumericBuilder())
            }
        }
        var documents = PostingsBuilder(withFrequencies: true)
        var docLengths = [UInt32](repeating: 0, count: n)
        var terms: [String: UInt32] = [:]
        for row in 0..<n {
            if let d = try segment.document(row) {
                terms.removeAll(keepingCapacity: true)
                var length: UInt32 = 0
                tokenizer.forEachToken(String(decoding: d, as: UTF8.self)) { w in
                    terms[w, default: 0] += 1
                    length += 1
                }
                docLengths[row] = length
                for (w, tf) in terms { documents.add(w, row: UInt32(row), tf: tf) }
            }
            if specs.isEmpty { continue }
            let bytes = try segment.metadata(row)
            if bytes.isEmpty { continue }
            let value: JSONValue
            do { value = try JSONParser.parse(bytes) } catch {
                throw SextantError(.corrupt, "\(segment.path): metadata of row \(row) is not valid JSON: \(error.message)")
            }
            for (i, field) in fieldOrder.enumerated() {
                let values = paths[i].values(in: value)
                if values.isEmpty { continue }
                switch field.spec.type {
                case .keyword:
                    var seen = Set<String>()
                    for case .string(let s) in values where seen.insert(s).inserted { postingsBuilders[field.slot].add(s, row: UInt32(row), tf: 1) }
                case .bool:
                    var seen = Set<Bool>()
                    for case .bool(let b) in values where seen.insert(b).inserted { postingsBuilders[field.slot].add(b ? "true" : "false", row: UInt32(row), tf: 1) }
                case .text:
                    var seen = Set<String>()
                    for case .string(let s) in values {
                        tokenizer.forEachToken(s) { w in
                            if seen.insert(w).inserted { postingsBuilders[field.slot].add(w, row: UInt32(row), tf: 1) }
                        }
                    }
                case .integer, .float:
                    for v in values {
                        switch v {
                        case .int(let x): numericBuilders[field.slot].add(Double(x), int: x, row: UInt32(row))
                        case .double(let x): numericBuilders[field.slot].add(x, int: nil, row: UInt32(row))
                        default: break
                        }
                    }
                case .datetime:
                    for case .string(let s) in values {
                        if let t = RFC3339.seconds(s) { numericBuilders[field.slot].add(t, int: nil, row: UInt32(row)) }
                    }
                }
            }
        }

        // Lay out: header, descriptor, sections.
        var data = ByteWriter()
        var descriptorFields: [String] = []
        func section(_ body: (inout ByteWriter) -> Void) -> (Int, Int) {
            data.align(8)
            let start = data.bytes.count
            body(&data)
            return (start, data.bytes.count - start)
        }
        func describe(_ key: String, _ type: String, _ sections: [(Int, Int)]) {
            var out: [UInt8] = []
            JSONWriter.write(.string(key), into: &out)
            let list = sections.map { "[\($0.0),\($0.1)]" }.joined(separator: ",")
            descriptorFields.append(#"{"key":\#(String(decoding: out, as: UTF8.self)),"type":"\#(type)","sections":[\#(list)]}"#)
        }
        describe(documentsKey, "documents", documents.emit(section) + [section { w in for l in docLengths { w.u32(l) } }])
        for field in fieldOrder {
            let s = field.isPostings ? postingsBuilders[field.slot].emit(section) : numericBuilders[field.slot].emit(section)
            describe(field.spec.key, field.spec.type.rawValue, s)
        }
        // Section offsets are relative to the start of the data (just after the padded descriptor).
        var descriptor = Array(#"{"fields":[\#(descriptorFields.joined(separator: ","))]}"#.utf8)
        while descriptor.count % 8 != 0 { descriptor.append(0x20) }
        var header = ByteWriter(capacity: 32)
        header.raw(magic)
        header.u32(version)
        header.u64(segment.id)
        header.u64(UInt64(n))
        header.u32(UInt32(descriptor.count))
        var file = header.bytes
        file.append(contentsOf: descriptor)
        file.append(contentsOf: data.bytes)
        let crc = CRC32C.checksum(file)
        withUnsafeBytes(of: crc.littleEndian) { file.append(contentsOf: $0) }
        try io.writeFileAtomically(path, file)
    }
}

/// A mapped payload index file. Its checksum is verified once, before first use (``verify()``).
package final class PayloadIndexReader: @unchecked Sendable {  // immutable but for the atomic flag
    package struct Field: Sendable {
        package let type: String
        let sections: [(offset: Int, length: Int)]
    }
    package let path: String
    let io: any FileIO
    let map: UnsafeRawBufferPointer
    let dataStart: Int
    /// Indexed payload fields by key, and the documents' postings.
    package let fields: [String: Field]
    private let verified = Atomic<Bool>(false)
    /// Documents and their total length over all rows (deleted or not), computed on first use.
    private let totals = Mutex<(documents: Int, length: Int)?>(nil)

    package init(io: any FileIO, path: String, segmentID: UInt64, rowCount: Int) throws(SextantError) {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        guard size >= 36 else { throw SextantError(.corrupt, "\(path): offset 0: index file too short (\(size) bytes)") }
        let map = try io.mapReadOnly(fd, length: size, path: path)
        var ok = false
        defer { if !ok { io.unmap(map) } }
        guard Array(map[0..<8]) == PayloadIndexFile.magic else { throw SextantError(.corrupt, "\(path): offset 0: not a Sextant index file") }
        let v = map.u32(at: 8)
        guard v == PayloadIndexFile.version else {
            throw SextantError(.unsupportedVersion, "\(path): index format version \(v) is not supported (this build reads version \(PayloadIndexFile.version))")
        }
        guard map.u64(at: 12) == segmentID, Int(map.u64(at: 20)) == rowCount else {
            throw SextantError(.corrupt, "\(path): index header does not match segment \(segmentID) (\(rowCount) rows)")
        }
        let descriptorLength = Int(map.u32(at: 28))
        guard 32 + descriptorLength <= size - 4 else { throw SextantError(.corrupt, "\(path): offset 28: bad descriptor length") }
        let descriptor: JSONValue
        do { descriptor = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: map[32..<(32 + descriptorLength)])) } catch {
            throw SextantError(.corrupt, "\(path): offset 32: index descriptor is not valid JSON")
        }
        let dataStart = 32 + descriptorLength
        let dataLength = size - 4 - dataStart
        var fields: [String: Field] = [:]
        for f in descriptor["fields"]?.arrayValue ?? [] {
            guard let key = f["key"]?.stringValue, let type = f["type"]?.stringValue, let list = f["sections"]?.arrayValue else {
                throw SextantError(.corrupt, "\(path): offset 32: malformed index descriptor")
            }
            var sections: [(Int, Int)] = []
            for pair in list {
                guard let o = pair[0]?.intValue, let l = pair[1]?.intValue, o >= 0, l >= 0, o % 8 == 0, Int(o + l) <= dataLength else {
                    throw SextantError(.corrupt, "\(path): index section of '\(key)' lies outside the file")
                }
                sections.append((Int(o), Int(l)))
            }
            let expected = type == "documents" ? 6 : ["integer", "float", "datetime"].contains(type) ? 4 : 4
            guard sections.count == expected else { throw SextantError(.corrupt, "\(path): index field '\(key)' has \(sections.count) sections") }
            fields[key] = Field(type: type, sections: sections)
        }
        guard fields[PayloadIndexFile.documentsKey] != nil else { throw SextantError(.corrupt, "\(path): index has no document postings") }
        self.io = io
        self.path = path
        self.map = map
        self.dataStart = dataStart
        self.fields = fields
        ok = true
    }

    deinit { io.unmap(map) }

    package var byteCount: Int { map.count }

    /// Checks the file's checksum (once).
    package func verify() throws(SextantError) {
        if verified.load(ordering: .acquiring) { return }
        let body = UnsafeRawBufferPointer(rebasing: map[0..<(map.count - 4)])
        guard CRC32C.checksum(body) == map.u32(at: map.count - 4) else {
            throw SextantError(.corrupt, "\(path): index file checksum mismatch")
        }
        verified.store(true, ordering: .releasing)
    }

    /// How many rows of `segment` have a document, and the documents' total length in words.
    package func documentTotals(_ segment: Segment) throws(SextantError) -> (documents: Int, length: Int) {
        if let t = totals.withLock({ $0 }) { return t }
        let lengths = postings(PayloadIndexFile.documentsKey)!.docLengths!
        var n = 0, length = 0
        for row in 0..<segment.rowCount where try segment.document(row) != nil {
            n += 1
            length += Int(lengths[row])
        }
        totals.withLock { $0 = (n, length) }
        return (n, length)
    }

    private func bytes(_ f: Field, _ i: Int) -> UnsafeRawBufferPointer {
        let s = f.sections[i]
        return UnsafeRawBufferPointer(rebasing: map[(dataStart + s.offset)..<(dataStart + s.offset + s.length)])
    }

    /// The postings of a documents / keyword / bool / text field.
    package func postings(_ key: String) -> Postings? {
        guard let f = fields[key], ["documents", "keyword", "bool", "text"].contains(f.type) else { return nil }
        let termEnds = bytes(f, 1), postEnds = bytes(f, 2), rows = bytes(f, 3)
        return Postings(
            terms: bytes(f, 0), termEnds: termEnds.baseAddress?.assumingMemoryBound(to: UInt32.self), postEnds: postEnds.baseAddress?.assumingMemoryBound(to: UInt64.self),
            rows: rows.baseAddress?.assumingMemoryBound(to: UInt32.self),
            tfs: f.type == "documents" ? bytes(f, 4).baseAddress?.assumingMemoryBound(to: UInt32.self) : nil,
            docLengths: f.type == "documents" ? bytes(f, 5).baseAddress?.assumingMemoryBound(to: UInt32.self) : nil,
            count: termEnds.count / 4)
    }

    /// The sorted values of an integer / float / datetime field.
    package func numeric(_ key: String) -> NumericColumn? {
        guard let f = fields[key], ["integer", "float", "datetime"].contains(f.type) else { return nil }
        let values = bytes(f, 0)
        return NumericColumn(
            values: values.baseAddress?.assumingMemoryBound(to: Double.self), rows: bytes(f, 1).baseAddress?.assumingMemoryBound(to: UInt32.self),
            ints: bytes(f, 2).baseAddress?.assumingMemoryBound(to: Int64.self), isInt: bytes(f, 3).baseAddress?.assumingMemoryBound(to: UInt8.self),
            count: values.count / 8)
    }
}

/// Sorted terms, each with its ascending rows (and, for documents, term frequencies).
package struct Postings {
    let terms: UnsafeRawBufferPointer
    let termEnds: UnsafePointer<UInt32>?
    let postEnds: UnsafePointer<UInt64>?
    package let rows: UnsafePointer<UInt32>?
    package let tfs: UnsafePointer<UInt32>?
    package let docLengths: UnsafePointer<UInt32>?
    package let count: Int

    func term(_ i: Int) -> UnsafeRawBufferPointer {
        let start = i == 0 ? 0 : Int(termEnds![i - 1])
        return UnsafeRawBufferPointer(rebasing: terms[start..<Int(termEnds![i])])
    }

    package func range(ofTermAt i: Int) -> Range<Int> {
        (i == 0 ? 0 : Int(postEnds![i - 1]))..<Int(postEnds![i])
    }

    /// The index of `term`, if present (binary search, bytewise order).
    package func find(_ term: String) -> Int? {
        var t = term
        return t.withUTF8 { key -> Int? in
            let k = UnsafeRawBufferPointer(key)
            var lo = 0, hi = count
            while lo < hi {
                let mid = (lo + hi) / 2
                let c = compareBytes(self.term(mid), k)
                if c == 0 { return mid }
                if c < 0 { lo = mid + 1 } else { hi = mid }
            }
            return nil
        }
    }
}

@inline(__always)
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return Int(c) }
    }
    return a.count - b.count
}

/// (value, row) pairs sorted by value; `ints` holds the exact integer where `isInt` is 1.
package struct NumericColumn {
    let values: UnsafePointer<Double>?
    let rows: UnsafePointer<UInt32>?
    let ints: UnsafePointer<Int64>?
    let isInt: UnsafePointer<UInt8>?
    let count: Int

    /// The first index whose value is ≥ x (or > x when `strictly`).
    func lowerBound(_ x: Double, strictly: Bool) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            let v = values![mid]
            if v < x || (strictly && v == x) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Indexes of entries whose value lies in the bounds.
    func range(_ r: RangeBounds) -> Range<Int> {
        var lo = 0, hi = count
        if let gt = r.gt { lo = max(lo, lowerBound(gt.value, strictly: true)) }
        if let gte = r.gte { lo = max(lo, lowerBound(gte.value, strictly: false)) }
        if let lt = r.lt { hi = min(hi, lowerBound(lt.value, strictly: false)) }
        if let lte = r.lte { hi = min(hi, lowerBound(lte.value, strictly: true)) }
        return lo..<max(lo, hi)
    }
}

/// Collects term → rows (and term frequencies) for one postings field.
struct PostingsBuilder {
    let withFrequencies: Bool
    var postings: [String: [UInt32]] = [:]
    var frequencies: [String: [UInt32]] = [:]

    init(withFrequencies: Bool) { self.withFrequencies = withFrequencies }

    mutating func add(_ term: String, row: UInt32, tf: UInt32) {
        postings[term, default: []].append(row)
        if withFrequencies { frequencies[term, default: []].append(tf) }
    }

    /// Writes terms, termEnds, postEnds, rows (and tfs) as sections; returns their (offset, length) relative to the data start.
    func emit(_ section: ((inout ByteWriter) -> Void) -> (Int, Int)) -> [(Int, Int)] {
        let sorted = postings.keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        var out: [(Int, Int)] = []
        out.append(section { w in for t in sorted { w.raw(t) } })
        out.append(section { w in
            var end: UInt32 = 0
            for t in sorted {
                end += UInt32(t.count)
                w.u32(end)
            }
        })
        out.append(section { w in
            var end: UInt64 = 0
            for t in sorted {
                end += UInt64(postings[String(decoding: t, as: UTF8.self)]!.count)
                w.u64(end)
            }
        })
        out.append(section { w in for t in sorted { for r in postings[String(decoding: t, as: UTF8.self)]! { w.u32(r) } } })
        if withFrequencies {
            out.append(section { w in for t in sorted { for f in frequencies[String(decoding: t, as: UTF8.self)]! { w.u32(f) } } })
        }
        return out
    }
}

/// Collects (value, row) pairs for one numeric field.
struct NumericBuilder {
    var entries: [(value: Double, int: Int64?, row: UInt32)] = []

    mutating func add(_ value: Double, int: Int64?, row: UInt32) { entries.append((value, int, row)) }

    func emit(_ section: ((inout ByteWriter) -> Void) -> (Int, Int)) -> [(Int, Int)] {
        let sorted = entries.sorted { $0.value < $1.value || ($0.value == $1.value && $0.row < $1.row) }
        return [
            section { w in for e in sorted { w.u64(e.value.bitPattern) } },
            section { w in for e in sorted { w.u32(e.row) } },
            section { w in for e in sorted { w.u64(UInt64(bitPattern: e.int ?? 0)) } },
            section { w in for e in sorted { w.u8(e.int != nil ? 1 : 0) } },
        ]
    }
}
