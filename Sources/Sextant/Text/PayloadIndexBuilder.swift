// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
    import Glibc
#endif

extension PayloadIndexFile {
    /// Builds the index of `specs` (plus documents) over the rows of `segment` and writes it atomically.
    ///
    /// Memory is about 20 bytes per posting (a term occurrence in a row) plus the distinct terms: terms are
    /// interned into one byte arena (``TermTable``), postings are flat arrays put in term order by a
    /// counting sort, and the file is streamed to disk — no dictionary of arrays, no whole-file buffer.
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
        var rowTerms: [UInt32] = []
        // Mapped pages read here count toward the process's memory until given back (they stay cached).
        let text = [try segment.section(.documents), try segment.section(.metadata)]
        defer { for t in text { segment.releasePages(t) } }
        for row in 0..<n {
            if row % 65_536 == 65_535 { for t in text { segment.releasePages(t) } }
            if let d = try segment.document(row) {
                rowTerms.removeAll(keepingCapacity: true)
                tokenizer.forEachToken(utf8: d) { w in rowTerms.append(documents.terms.intern(w)) }
                docLengths[row] = UInt32(rowTerms.count)
                documents.addRow(UInt32(row), terms: &rowTerms)
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
                rowTerms.removeAll(keepingCapacity: true)
                switch field.spec.type {
                case .keyword:
                    for case .string(let s) in values { rowTerms.append(postingsBuilders[field.slot].terms.intern(s)) }
                case .bool:
                    for case .bool(let b) in values { rowTerms.append(postingsBuilders[field.slot].terms.intern(b ? "true" : "false")) }
                case .text:
                    for case .string(let s) in values {
                        var s = s
                        s.withUTF8 { u in
                            tokenizer.forEachToken(utf8: UnsafeRawBufferPointer(u)) { w in rowTerms.append(postingsBuilders[field.slot].terms.intern(w)) }
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
                // A row is listed once per distinct term of a field.
                if field.isPostings && !rowTerms.isEmpty { postingsBuilders[field.slot].addRow(UInt32(row), terms: &rowTerms) }
            }
        }

        // Put every field in final order, then lay out: header, descriptor, sections (each 8-byte aligned,
        // offsets relative to the start of the data, which follows the padded descriptor).
        documents.sortByTerm()
        for i in postingsBuilders.indices { postingsBuilders[i].sortByTerm() }
        for i in numericBuilders.indices { numericBuilders[i].sortByValue() }
        var layout: [(key: String, type: String, lengths: [Int])] = [
            (documentsKey, "documents", documents.sectionLengths + [4 * n])
        ]
        for field in fieldOrder {
            layout.append((
                field.spec.key, field.spec.type.rawValue,
                field.isPostings ? postingsBuilders[field.slot].sectionLengths : numericBuilders[field.slot].sectionLengths))
        }
        var at = 0
        var descriptorFields: [String] = []
        for f in layout {
            var list: [String] = []
            for length in f.lengths {
                at = (at + 7) & ~7
                list.append("[\(at),\(length)]")
                at += length
            }
            var key: [UInt8] = []
            JSONWriter.write(.string(f.key), into: &key)
            descriptorFields.append(#"{"key":\#(String(decoding: key, as: UTF8.self)),"type":"\#(f.type)","sections":[\#(list.joined(separator: ","))]}"#)
        }
        var descriptor = Array(#"{"fields":[\#(descriptorFields.joined(separator: ","))]}"#.utf8)
        while descriptor.count % 8 != 0 { descriptor.append(0x20) }
        var header = ByteWriter(capacity: 32)
        header.raw(magic)
        header.u32(version)
        header.u64(segment.id)
        header.u64(UInt64(n))
        header.u32(UInt32(descriptor.count))

        try io.createAtomically(path) { (fd, tmp) throws(SextantError) in
            var f = SequentialFile(io: io, fd: fd, path: tmp)
            try f.write(header.bytes)
            try f.write(descriptor)
            let dataStart = f.offset
            func section(_ expected: Int, _ body: (inout SequentialFile) throws(SextantError) -> Void) throws(SextantError) {
                try f.align(to: 8)
                let start = f.offset
                try body(&f)
                precondition(f.offset - start == expected, "payload index section length differs from its layout")
            }
            var lengths = layout[0].lengths.makeIterator()
            try documents.writeSections { (body) throws(SextantError) in try section(lengths.next()!, body) }
            try section(lengths.next()!) { (f) throws(SextantError) in try docLengths.withBytes { (b) throws(SextantError) in try f.write(b) } }
            for (i, field) in fieldOrder.enumerated() {
                var lengths = layout[i + 1].lengths.makeIterator()
                let next = { (body: (inout SequentialFile) throws(SextantError) -> Void) throws(SextantError) in try section(lengths.next()!, body) }
                if field.isPostings {
                    try postingsBuilders[field.slot].writeSections(next)
                } else {
                    try numericBuilders[field.slot].writeSections(next)
                }
            }
            precondition(f.offset - dataStart == (at + 0), "payload index data length differs from its layout")
            let crc = f.crc
            try f.write(crc)
            try f.drain()
        }
    }
}

/// Interns terms: each distinct byte string gets a dense id (in first-seen order). The bytes live in one
/// arena and an open-addressing table of ids finds them, so a term costs its length plus about 20 bytes
/// (a Swift `[String: …]` costs an allocation or two per term).
struct TermTable {
    private(set) var bytes: [UInt8] = []
    /// End offset in `bytes` of each term; term i is `bytes[ends[i-1] ..< ends[i]]`.
    private(set) var ends: [UInt32] = []
    private var hashes: [UInt64] = []
    /// id + 1, or 0 for an empty slot; the count is a power of two, at most half full.
    private var slots = [UInt32](repeating: 0, count: 1024)

    var count: Int { ends.count }

    func range(_ id: Int) -> Range<Int> { (id == 0 ? 0 : Int(ends[id - 1]))..<Int(ends[id]) }

    mutating func intern(_ term: String) -> UInt32 {
        var t = term
        return t.withUTF8 { intern(UnsafeRawBufferPointer($0)) }
    }

    mutating func intern(_ term: UnsafeRawBufferPointer) -> UInt32 {
        let h = keyHash(term)
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i] != 0 {
            let id = Int(slots[i] - 1)
            if hashes[id] == h && equals(id, term) { return UInt32(id) }
            i = (i + 1) & mask
        }
        let id = UInt32(ends.count)
        bytes.append(contentsOf: term)
        ends.append(UInt32(bytes.count))
        hashes.append(h)
        slots[i] = id + 1
        if ends.count * 2 > slots.count { grow() }
        return id
    }

    private func equals(_ id: Int, _ term: UnsafeRawBufferPointer) -> Bool {
        let r = range(id)
        guard r.count == term.count else { return false }
        if r.isEmpty { return true }
        return bytes.withUnsafeBytes { b in memcmp(b.baseAddress! + r.lowerBound, term.baseAddress!, r.count) == 0 }
    }

    private mutating func grow() {
        slots = [UInt32](repeating: 0, count: slots.count * 2)
        let mask = slots.count - 1
        for id in 0..<ends.count {
            var i = Int(truncatingIfNeeded: hashes[id]) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = UInt32(id + 1)
        }
    }

    /// Term ids in bytewise order of their terms.
    func sortedIDs() -> [UInt32] {
        var order = (0..<UInt32(count)).map { $0 }
        bytes.withUnsafeBytes { b in
            order.sort { x, y in
                let rx = range(Int(x)), ry = range(Int(y))
                return compareBytes(UnsafeRawBufferPointer(rebasing: b[rx]), UnsafeRawBufferPointer(rebasing: b[ry])) < 0
            }
        }
        return order
    }
}

/// Collects term → rows (and term frequencies) for one postings field, then writes the sections
/// terms | termEnds | postEnds | rows (| tfs) described at ``PayloadIndexFile``.
struct PostingsBuilder {
    let withFrequencies: Bool
    var terms = TermTable()
    /// Postings in arrival (row) order until ``sortByTerm()``: each one's term (and frequency); the rows
    /// that have postings, and where each one's postings end.
    private var termOf: [UInt32] = []
    private var tfs: [UInt32] = []
    private var rowIDs: [UInt32] = []
    private var rowEnds: [UInt32] = []
    /// After ``sortByTerm()``: the postings' rows (and `tfs`) in term order.
    private var rows: [UInt32] = []
    private var order: [UInt32] = []
    private var postEnds: [UInt64] = []

    init(withFrequencies: Bool) { self.withFrequencies = withFrequencies }

    /// Adds one row holding the term ids in `rowTerms` (repeats count toward the term frequency). Rows
    /// must come in ascending order. `rowTerms` is left in an unspecified order.
    mutating func addRow(_ row: UInt32, terms rowTerms: inout [UInt32]) {
        if rowTerms.isEmpty { return }
        rowTerms.sort()
        var i = 0
        while i < rowTerms.count {
            var j = i + 1
            while j < rowTerms.count && rowTerms[j] == rowTerms[i] { j += 1 }
            termOf.append(rowTerms[i])
            if withFrequencies { tfs.append(UInt32(j - i)) }
            i = j
        }
        rowIDs.append(row)
        rowEnds.append(UInt32(termOf.count))
    }

    /// Groups the postings by term, terms in bytewise order, rows ascending within a term (a stable
    /// counting sort over the arrival order).
    mutating func sortByTerm() {
        order = terms.sortedIDs()
        var rank = [UInt32](repeating: 0, count: terms.count)
        for (r, id) in order.enumerated() { rank[Int(id)] = UInt32(r) }
        var starts = [Int](repeating: 0, count: terms.count + 1)
        for t in termOf { starts[Int(rank[Int(t)]) + 1] += 1 }
        for i in 0..<terms.count { starts[i + 1] += starts[i] }
        postEnds = starts.dropFirst().map { UInt64($0) }
        var sortedRows = [UInt32](repeating: 0, count: termOf.count)
        var sortedTFs = [UInt32](repeating: 0, count: withFrequencies ? termOf.count : 0)
        var k = 0
        for (i, row) in rowIDs.enumerated() {
            while k < Int(rowEnds[i]) {
                let r = Int(rank[Int(termOf[k])])
                let at = starts[r]
                starts[r] += 1
                sortedRows[at] = row
                if withFrequencies { sortedTFs[at] = tfs[k] }
                k += 1
            }
        }
        termOf = []
        rowIDs = []
        rowEnds = []
        rows = sortedRows
        tfs = sortedTFs
    }

    var sectionLengths: [Int] {
        [terms.bytes.count, 4 * terms.count, 8 * terms.count, 4 * rows.count] + (withFrequencies ? [4 * tfs.count] : [])
    }

    func writeSections(_ section: ((inout SequentialFile) throws(SextantError) -> Void) throws(SextantError) -> Void) throws(SextantError) {
        let termBytes = terms.bytes
        try section { (f) throws(SextantError) in
            try termBytes.withBytes { (b) throws(SextantError) in
                for id in order { try f.write(UnsafeRawBufferPointer(rebasing: b[terms.range(Int(id))])) }
            }
        }
        var termEnds: [UInt32] = []
        termEnds.reserveCapacity(order.count)
        var end: UInt32 = 0
        for id in order {
            end += UInt32(terms.range(Int(id)).count)
            termEnds.append(end)
        }
        try section { (f) throws(SextantError) in try termEnds.withBytes { (b) throws(SextantError) in try f.write(b) } }
        try section { (f) throws(SextantError) in try postEnds.withBytes { (b) throws(SextantError) in try f.write(b) } }
        try section { (f) throws(SextantError) in try rows.withBytes { (b) throws(SextantError) in try f.write(b) } }
        if withFrequencies {
            try section { (f) throws(SextantError) in try tfs.withBytes { (b) throws(SextantError) in try f.write(b) } }
        }
    }
}

/// Collects (value, row) pairs for one numeric field; writes values | rows | ints | isInt.
struct NumericBuilder {
    private var values: [Double] = []
    private var rows: [UInt32] = []
    private var ints: [Int64] = []
    private var isInt: [UInt8] = []

    mutating func add(_ value: Double, int: Int64?, row: UInt32) {
        values.append(value)
        rows.append(row)
        ints.append(int ?? 0)
        isInt.append(int != nil ? 1 : 0)
    }

    /// Orders the entries by value, then row.
    mutating func sortByValue() {
        var order = Array(values.indices)
        order.sort { a, b in values[a] < values[b] || (values[a] == values[b] && rows[a] < rows[b]) }
        values = order.map { values[$0] }
        rows = order.map { rows[$0] }
        ints = order.map { ints[$0] }
        isInt = order.map { isInt[$0] }
    }

    var sectionLengths: [Int] { [8 * values.count, 4 * rows.count, 8 * ints.count, isInt.count] }

    func writeSections(_ section: ((inout SequentialFile) throws(SextantError) -> Void) throws(SextantError) -> Void) throws(SextantError) {
        try section { (f) throws(SextantError) in try values.withBytes { (b) throws(SextantError) in try f.write(b) } }
        try section { (f) throws(SextantError) in try rows.withBytes { (b) throws(SextantError) in try f.write(b) } }
        try section { (f) throws(SextantError) in try ints.withBytes { (b) throws(SextantError) in try f.write(b) } }
        try section { (f) throws(SextantError) in try isInt.withBytes { (b) throws(SextantError) in try f.write(b) } }
    }
}
