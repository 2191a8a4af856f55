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
    private let totals = Locked<(documents: Int, length: Int)?>(nil)

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
        guard map.u64(at: 12) == segmentID, Int(clamping: map.u64(at: 20)) == rowCount else {
            throw SextantError(.corrupt, "\(path): index header does not match segment \(segmentID) (\(rowCount) rows)")
        }
        let descriptorLength = Int(map.u32(at: 28))
        // The sections are read through typed pointers: the data must start 8-byte aligned.
        guard 32 + descriptorLength <= size - 4, descriptorLength % 8 == 0 else {
            throw SextantError(.corrupt, "\(path): offset 28: bad descriptor length")
        }
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
                guard let o = (pair[0]?.intValue).map(Int.init), let l = (pair[1]?.intValue).map(Int.init),
                    o >= 0, l >= 0, o % 8 == 0, o <= dataLength, l <= dataLength - o
                else {
                    throw SextantError(.corrupt, "\(path): index section of '\(key)' lies outside the file")
                }
                sections.append((o, l))
            }
            guard ["documents", "keyword", "bool", "text", "integer", "float", "datetime"].contains(type) else {
                throw SextantError(.corrupt, "\(path): index field '\(key)' has unknown type '\(type)'")
            }
            let expected = type == "documents" ? 6 : 4
            guard sections.count == expected else { throw SextantError(.corrupt, "\(path): index field '\(key)' has \(sections.count) sections") }
            fields[key] = Field(type: type, sections: sections)
        }
        guard fields[PayloadIndexFile.documentsKey] != nil else { throw SextantError(.corrupt, "\(path): index has no document postings") }
        self.io = io
        self.path = path
        self.map = map
        self.dataStart = dataStart
        self.fields = fields
        self.rowCount = rowCount
        ok = true
    }

    private let rowCount: Int

    deinit { io.unmap(map) }

    package var byteCount: Int { map.count }

    /// Checks the file's checksum (once).
    package func verify() throws(SextantError) {
        if verified.load(ordering: .acquiring) { return }
        let body = UnsafeRawBufferPointer(rebasing: map[0..<(map.count - 4)])
        guard CRC32C.checksum(body) == map.u32(at: map.count - 4) else {
            throw SextantError(.corrupt, "\(path): index file checksum mismatch")
        }
        for (key, field) in fields.sorted(by: { $0.key < $1.key }) { try verifyStructure(key, field) }
        verified.store(true, ordering: .releasing)
    }

    /// Checksums catch accidents; this stops a crafted file with a valid checksum. Lookups index the
    /// sections without bounds checks, so every size must agree, every end offset must be ascending and in
    /// range, and every row must be one of the segment's. One pass over the file, once.
    private func verifyStructure(_ key: String, _ f: Field) throws(SextantError) {
        func fail(_ what: String) -> SextantError { SextantError(.corrupt, "\(path): index field '\(key)': \(what)") }
        let lengths = f.sections.map(\.length)
        func rowsInRange(_ b: UnsafeRawBufferPointer) throws(SextantError) {
            for i in 0..<(b.count / 4) where Int(b.u32(at: i * 4)) >= rowCount {
                throw fail("row \(b.u32(at: i * 4)) at entry \(i) is past the segment's \(rowCount) rows")
            }
        }
        if ["integer", "float", "datetime"].contains(f.type) {
            let n = lengths[0] / 8
            guard lengths[0] % 8 == 0, lengths[1] == 4 * n, lengths[2] == 8 * n, lengths[3] == n else {
                throw fail("numeric sections of \(lengths) bytes do not describe one list of values")
            }
            try rowsInRange(bytes(f, 1))
            return
        }
        let terms = lengths[0], t = lengths[1] / 4, p = lengths[3] / 4
        guard lengths[1] % 4 == 0, lengths[2] == 8 * t, lengths[3] % 4 == 0 else {
            throw fail("postings sections of \(lengths) bytes do not describe one list of terms")
        }
        if f.type == "documents" {
            guard lengths[4] == 4 * p, lengths[5] == 4 * rowCount else {
                throw fail("frequencies or document lengths of \(lengths[4]), \(lengths[5]) bytes for \(p) postings and \(rowCount) rows")
            }
        }
        let termEnds = bytes(f, 1), postEnds = bytes(f, 2)
        var lastTerm = 0, lastPost = 0
        for i in 0..<t {
            let te = Int(termEnds.u32(at: i * 4)), pe = Int(clamping: postEnds.u64(at: i * 8))
            guard te >= lastTerm, te <= terms else { throw fail("term \(i) ends at byte \(te), outside \(lastTerm)...\(terms)") }
            guard pe >= lastPost, pe <= p else { throw fail("term \(i)'s postings end at \(pe), outside \(lastPost)...\(p)") }
            lastTerm = te
            lastPost = pe
        }
        guard lastPost == p else { throw fail("the terms' postings end at \(lastPost), not at the \(p) postings stored") }
        try rowsInRange(bytes(f, 3))
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
