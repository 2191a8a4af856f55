// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Crafted files with valid checksums, as an archive or backup from elsewhere can carry: every one is reported
/// as corruption naming the file, or dropped and rebuilt where it is derived data — never a crash, never
/// wrong results. Checksums catch accidents; these tests are about the structural checks that stop malice.
@Suite struct HostileFileTests {
    static let rows = 2_000
    static let dimension = 8

    /// Collection "g": one segment of 2,000 rows with a graph (M = 4, so many nodes have upper levels),
    /// int8 codes when `quantized`, and a payload index on "tag".
    func makeDatabase(_ path: String, quantized: Bool = false) throws {
        let db = try Database.open(at: path)
        var index = IndexConfiguration(neighborsPerNode: 4, indexingSearchCount: 32, minimumRowsForGraph: 100)
        if quantized { index.quantization = .int8 }
        let g = try db.createCollection("g", dimension: Self.dimension, metric: .euclidean, index: index)
        let vectors = randomVectors(Self.rows, dimension: Self.dimension, seed: 11)
        try g.upsert((0..<Self.rows).map {
            Record(id: .int(UInt64($0)), vector: vectors[$0], metadata: ["tag": .string($0 % 3 == 0 ? "a" : "b"), "n": .int(Int64($0))])
        })
        try g.createPayloadIndex("tag", type: .keyword)
        try g.createPayloadIndex("n", type: .integer)
        try g.flush()
        try g.waitForIndexing()
        #expect(try g.info().indexedRows == Self.rows)
        db.close()
    }

    var collectionDirectory: String { "collections/0000000000000001" }

    func file(_ db: String, suffix: String) throws -> String {
        let dir = db + "/" + collectionDirectory
        let name = try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(suffix) }
        return dir + "/" + (try #require(name, "no \(suffix) file"))
    }

    func u32(_ b: [UInt8], _ o: Int) -> Int { b.withUnsafeBytes { Int($0.u32(at: o)) } }
    func u64(_ b: [UInt8], _ o: Int) -> Int { b.withUnsafeBytes { Int(clamping: $0.u64(at: o)) } }
    func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { b[o + i] = $0[i] } } }
    func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { for i in 0..<8 { b[o + i] = $0[i] } } }
    func crc(_ b: [UInt8], _ r: Range<Int>) -> UInt32 { b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[r])) } }

    /// Graph file layout, from its own table (see HNSWFile).
    struct GraphLayout {
        var m: Int
        var count: Int
        var sections: [(offset: Int, length: Int)]  // levels, upperOffsets, level0, upperLinks
        var tableOffset: Int
    }

    func graphLayout(_ b: [UInt8]) -> GraphLayout {
        let footerAt = b.count - 32
        let table = u64(b, footerAt)
        return GraphLayout(
            m: u32(b, 12), count: u64(b, 24),
            sections: (0..<4).map { (u64(b, table + $0 * 24), u64(b, table + $0 * 24 + 8)) }, tableOffset: table)
    }

    /// Rewrites the graph file through `edit`, then recomputes every checksum as the writer would.
    func craftGraph(_ path: String, _ edit: (inout [UInt8], GraphLayout) -> Void) throws {
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let layout = graphLayout(b)
        edit(&b, layout)
        for (i, s) in layout.sections.enumerated() { put32(&b, layout.tableOffset + i * 24 + 16, crc(b, s.offset..<(s.offset + s.length))) }
        put32(&b, b.count - 32 + 8, crc(b, layout.tableOffset..<(layout.tableOffset + 96)))
        put32(&b, 60, crc(b, 0..<60))
        try Data(b).write(to: URL(fileURLWithPath: path))
    }

    /// The first node with at least one upper level, and the offset of its level-1 link block.
    func upperNode(_ b: [UInt8], _ l: GraphLayout) -> (node: Int, block: Int)? {
        for node in 0..<l.count where b[l.sections[0].offset + node] > 0 {
            let first = u32(b, l.sections[1].offset + node * 4)
            return (node, l.sections[3].offset + first * (l.m + 1) * 4)
        }
        return nil
    }

    enum GraphAttack: String, CaseIterable, CustomTestStringConvertible {
        case entryPointPastTheEnd, maxLevel200, entryPointNotOnTheTopLevel, levelAboveTheTop, level0LinkOutOfRange
        case tooManyLevel0Links, upperOffsetOutOfRange, upperLinkOutOfRange, upperLinkToANodeNotOnThatLevel
        var testDescription: String { rawValue }
    }

    /// The attacks of the issue (entry point, maxLevel 200, upper-link rows, level-0 links) and their kin:
    /// the search never follows them. `verify` names the graph file; search falls back to scanning the
    /// segment and returns exactly what an exact search returns; the graph is rebuilt.
    @Test(arguments: GraphAttack.allCases)
    func aCraftedGraphIsRefusedBeforeTheSearchFollowsIt(attack: GraphAttack) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let graph = try file(path, suffix: ".hnsw")
        var edited = true
        try craftGraph(graph) { b, l in
            let n = UInt32(l.count)
            switch attack {
            case .entryPointPastTheEnd: put64(&b, 32, UInt64(l.count) + 1_000_000)
            case .maxLevel200: put32(&b, 20, 200)
            case .entryPointNotOnTheTopLevel:
                // Point the entry at a level-0 node.
                let node = (0..<l.count).first { b[l.sections[0].offset + $0] == 0 }!
                put64(&b, 32, UInt64(node))
            case .levelAboveTheTop: b[l.sections[0].offset + 5] = 250
            case .level0LinkOutOfRange: put32(&b, l.sections[2].offset + 4, n + 7)
            case .tooManyLevel0Links: put32(&b, l.sections[2].offset, UInt32(2 * l.m + 5))
            case .upperOffsetOutOfRange:
                guard let (node, _) = upperNode(b, l) else { edited = false; return }
                put32(&b, l.sections[1].offset + node * 4, 0x7fff_ffff)
            case .upperLinkOutOfRange:
                guard let (_, block) = upperNode(b, l) else { edited = false; return }
                put32(&b, block, 1)
                put32(&b, block + 4, n + 123)
            case .upperLinkToANodeNotOnThatLevel:
                guard let (_, block) = upperNode(b, l) else { edited = false; return }
                let low = (0..<l.count).first { b[l.sections[0].offset + $0] == 0 }!
                put32(&b, block, 1)
                put32(&b, block + 4, UInt32(low))
            }
        }
        try #require(edited, "the graph has no upper levels to attack")
        let report = try Database.verify(at: path)
        #expect(report.problems.contains { $0.contains(".hnsw") }, "\(report.problems)")

        let db = try Database.open(at: path)
        defer { db.close() }
        let g = try db.collection("g")
        let queries = randomVectors(20, dimension: Self.dimension, seed: 99)
        for q in queries {
            let hits = try g.search(q, limit: 10, ef: 16)
            let exact = try g.search(q, limit: 10, exact: true)
            #expect(hits.map(\.id) == exact.map(\.id))
        }
        // Filtered searches go through the same graph.
        let filter = try Filter(json: #"{"must":[{"key":"tag","match":{"value":"b"}}]}"#)
        for q in queries.prefix(5) {
            #expect(try g.search(q, limit: 10, filter: filter, ef: 16).map(\.id) == g.search(q, limit: 10, filter: filter, exact: true).map(\.id))
        }
        // The damaged graph is dropped and rebuilt from the segment.
        try g.waitForIndexing()
        #expect(try g.info().indexedRows == Self.rows)
        db.close()
        #expect(try Database.verify(at: path).isClean)
    }

    /// A crafted header whose sizes would overflow the section arithmetic is refused at load.
    @Test func aGraphHeaderWithHugeCountsIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let graph = try file(path, suffix: ".hnsw")
        for (offset, value) in [(12, UInt64(UInt32.max)), (40, UInt64.max), (40, UInt64(1) << 61)] {
            let original = try Data(contentsOf: URL(fileURLWithPath: graph))
            try craftGraph(graph) { b, _ in
                if offset == 12 { put32(&b, offset, UInt32(value)) } else { put64(&b, offset, value) }
            }
            #expect(throws: SextantError.self) {
                try HNSWFile.load(io: PosixFileIO(), path: graph, segmentID: 1, rowCount: Self.rows)
            }
            let report = try Database.verify(at: path)
            #expect(report.problems.contains { $0.contains(".hnsw") }, "header field at \(offset) = \(value): \(report.problems)")
            try original.write(to: URL(fileURLWithPath: graph))
        }
    }

    /// int8 codes whose scale is NaN, infinite, zero or negative (checksum valid): the codes are dropped
    /// with the graph and rebuilt; searches never divide by them.
    @Test(arguments: [Float.nan, .infinity, 0, -1])
    func aCraftedQuantizationScaleIsRefused(scale: Float) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path, quantized: true)
        let codes = try file(path, suffix: ".q8")
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: codes)))
        put32(&b, 24, scale.bitPattern)
        put32(&b, 60, crc(b, 0..<60))
        try Data(b).write(to: URL(fileURLWithPath: codes))
        #expect(throws: SextantError.self) {
            try QuantizedVectors(io: PosixFileIO(), path: codes, segmentID: 1, count: Self.rows, dimension: Self.dimension)
        }
        let report = try Database.verify(at: path)
        #expect(report.problems.contains { $0.contains(".q8") && $0.contains("scale") }, "\(report.problems)")
        let db = try Database.open(at: path)
        defer { db.close() }
        let g = try db.collection("g")
        let q = randomVectors(1, dimension: Self.dimension, seed: 5)[0]
        #expect(try g.search(q, limit: 5).count == 5)
        try g.waitForIndexing()
        db.close()
        #expect(try Database.verify(at: path).isClean)
    }

    /// Segment headers and tables with sizes past the file (checksums valid): corruption naming the
    /// segment, never an arithmetic trap.
    @Test(arguments: [24, 1_000, 1_001])
    func aCraftedSegmentSizeIsCorruptionNotATrap(field: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let seg = try file(path, suffix: ".seg")
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: seg)))
        let footerAt = b.count - SegmentFile.footerSize
        switch field {
        case 24:  // row count
            put64(&b, 24, UInt64.max - 3)
            put32(&b, 60, crc(b, 0..<60))
        case 1_000:  // section table offset
            put64(&b, footerAt, UInt64.max - 100)
        default:  // first section's length, table checksum recomputed
            let table = u64(b, footerAt)
            let entries = u32(b, footerAt + 8)
            put64(&b, table + 16, UInt64(Int.max) - 5)
            put32(&b, footerAt + 12, crc(b, table..<(table + entries * SegmentFile.tableEntrySize)))
        }
        try Data(b).write(to: URL(fileURLWithPath: seg))
        #expect(throws: SextantError.self) { try Segment(io: PosixFileIO(), path: seg, expectedID: 1) }
        let report = try Database.verify(at: path)
        #expect(report.problems.contains { $0.contains(".seg") }, "\(report.problems)")
        var failure: SextantError?
        do {
            let db = try Database.open(at: path)
            defer { db.close() }
            _ = try db.collection("g")
        } catch { failure = error }
        #expect(failure?.code == .corrupt && failure?.message.contains(".seg") == true, "\(String(describing: failure))")
    }

    /// A payload index with a valid checksum whose rows, term ends or postings ends point outside: dropped
    /// and rebuilt; filtered searches give the exact answer meanwhile.
    @Test(arguments: ["row", "termEnd", "postEnd", "numericRow"])
    func aCraftedPayloadIndexIsDroppedNotFollowed(attack: String) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.sub("db")
        try makeDatabase(path)
        let pidx = try file(path, suffix: ".pidx")
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: pidx)))
        let descriptorLength = u32(b, 28)
        let dataStart = 32 + descriptorLength
        let descriptor = try JSONParser.parse(Array(b[32..<dataStart]))
        func sections(_ key: String) -> [(Int, Int)] {
            let f = descriptor["fields"]!.arrayValue!.first { $0["key"]?.stringValue == key }!
            return f["sections"]!.arrayValue!.map { (Int($0[0]!.intValue!), Int($0[1]!.intValue!)) }
        }
        switch attack {
        case "row": put32(&b, dataStart + sections("tag")[3].0, UInt32(Self.rows + 5))
        case "termEnd": put32(&b, dataStart + sections("tag")[1].0, 0xffff_fff0)
        case "postEnd": put64(&b, dataStart + sections("tag")[2].0, UInt64.max)
        default: put32(&b, dataStart + sections("n")[1].0, UInt32.max)
        }
        put32(&b, b.count - 4, crc(b, 0..<(b.count - 4)))
        try Data(b).write(to: URL(fileURLWithPath: pidx))
        let report = try Database.verify(at: path)
        #expect(report.problems.contains { $0.contains(".pidx") }, "\(report.problems)")
        let db = try Database.open(at: path)
        defer { db.close() }
        let g = try db.collection("g")
        let expected = (0..<Self.rows).filter { $0 % 3 == 0 && $0 >= 100 }.count
        #expect(try g.count(filter: try Filter(json: #"{"must":[{"key":"tag","match":{"value":"a"}},{"key":"n","range":{"gte":100}}]}"#)) == expected)
        let q = randomVectors(1, dimension: Self.dimension, seed: 5)[0]
        let filter = try Filter(json: #"{"must":[{"key":"tag","match":{"value":"a"}}]}"#)
        #expect(try g.search(q, limit: 10, filter: filter).map(\.id) == g.search(q, limit: 10, filter: filter, exact: true).map(\.id))
    }

    /// Deletion marks past the segment's last row (checksum valid) are corruption, not negative live counts.
    @Test func deletionMarksPastTheLastRowAreCorruption() throws {
        let rowCount = 70
        var bitmap = Bitmap(count: rowCount)
        bitmap.insert(3)
        var b = DeletionFile.encode(bitmap, segmentID: 9, rowCount: rowCount)
        #expect(try DeletionFile.decode(b, path: "d", segmentID: 9, rowCount: rowCount).setCount == 1)
        b[32 + 8 + 7] |= 0x80  // bit 127 of the second word: row 127 of 70
        put32(&b, b.count - 4, crc(b, 0..<(b.count - 4)))
        var failure: SextantError?
        do { _ = try DeletionFile.decode(b, path: "d", segmentID: 9, rowCount: rowCount) } catch { failure = error }
        #expect(failure?.code == .corrupt && failure?.message.contains("past the segment") == true, "\(String(describing: failure))")
    }
}
