// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The graph file beside a segment: `<segment id>.hnsw`.
///
/// ```
/// file    := header section{4} table footer
/// header  := magic "SEXTHNSW" | version:u32 (=1) | neighborsPerNode:u32 | indexingSearchCount:u32 | maxLevel:u32
///            | count:u64 | entryPoint:u64 | upperBlocks:u64 | segmentID:u64 | reserved[4] | crc:u32   (64 bytes)
/// section := levels (u8 × count) | upperOffsets (u32 × count) | level0 (u32 × count·(2M+1)) | upperLinks (u32 × blocks·(M+1)),
///            each at a 64-byte aligned offset
/// table   := (offset:u64 length:u64 crc:u32 pad:u32) × 4
/// footer  := tableOffset:u64 | tableCRC:u32 | version:u32 | pad:u64 | magic "SEXTHNSE"                    (32 bytes)
/// ```
/// The graph is used straight from the mapping; each section's checksum is verified before first use.
package enum HNSWFile {
    package static let magic: [UInt8] = Array("SEXTHNSW".utf8)
    package static let footerMagic: [UInt8] = Array("SEXTHNSE".utf8)
    package static let version: UInt32 = 1

    package static func name(_ segmentID: UInt64) -> String { hex16(segmentID) + ".hnsw" }

    /// The largest M a graph file may declare (the index configuration allows far less).
    package static let maxNeighborsPerNode = 1 << 12

    /// Writes `graph` to `path` atomically and durably.
    package static func write(_ graph: HNSWGraph, segmentID: UInt64, io: any FileIO, path: String) throws(SextantError) {
        let m = graph.neighborsPerNode
        let sections: [UnsafeRawBufferPointer] = [
            UnsafeRawBufferPointer(start: graph.levels, count: graph.count),
            UnsafeRawBufferPointer(start: graph.upperOffsets, count: graph.count * 4),
            UnsafeRawBufferPointer(start: graph.level0, count: graph.count * (2 * m + 1) * 4),
            UnsafeRawBufferPointer(start: graph.upperLinks, count: graph.upperBlockCount * (m + 1) * 4),
        ]
        var header = ByteWriter(capacity: 64)
        header.raw(magic)
        header.u32(version)
        header.u32(UInt32(m))
        header.u32(UInt32(graph.indexingSearchCount))
        header.u32(UInt32(graph.maxLevel))
        header.u64(UInt64(graph.count))
        header.u64(UInt64(graph.entryPoint))
        header.u64(UInt64(graph.upperBlockCount))
        header.u64(segmentID)
        header.zeros(60 - header.bytes.count)
        header.u32(CRC32C.checksum(header.bytes))

        try io.createAtomically(path) { (fd, tmp) throws(SextantError) in
            var offset = 0
            func put(_ b: UnsafeRawBufferPointer) throws(SextantError) {
                if b.count > 0 { try io.write(fd, b, path: tmp) }
                offset += b.count
            }
            func align() throws(SextantError) {
                let pad = (64 - offset % 64) % 64
                if pad > 0 { try [UInt8](repeating: 0, count: pad).withBytes { (b) throws(SextantError) in try put(b) } }
            }
            try header.bytes.withBytes { (b) throws(SextantError) in try put(b) }
            var table = ByteWriter(capacity: 4 * 24)
            for s in sections {
                try align()
                table.u64(UInt64(offset))
                table.u64(UInt64(s.count))
                table.u32(CRC32C.checksum(s))
                table.u32(0)
                try put(s)
            }
            try align()
            let tableOffset = offset
            try table.bytes.withBytes { (b) throws(SextantError) in try put(b) }
            var footer = ByteWriter(capacity: 32)
            footer.u64(UInt64(tableOffset))
            footer.u32(CRC32C.checksum(table.bytes))
            footer.u32(version)
            footer.u64(0)
            footer.raw(footerMagic)
            try footer.bytes.withBytes { (b) throws(SextantError) in try put(b) }
        }
    }

    /// Maps a graph file. Checks header, footer, table and section sizes now; section checksums are checked
    /// by ``verify(_:)`` (before first use).
    package static func load(io: any FileIO, path: String, segmentID: UInt64, rowCount: Int) throws(SextantError) -> (
        HNSWGraph, MappedGraphFile
    ) {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        guard size >= 64 + 32 + 96 else { throw SextantError(.corrupt, "\(path): offset 0: graph file too short (\(size) bytes)") }
        let map = try io.mapReadOnly(fd, length: size, path: path)
        var ok = false
        defer { if !ok { io.unmap(map) } }
        guard Array(map[0..<8]) == magic else { throw SextantError(.corrupt, "\(path): offset 0: not a Sextant graph file") }
        let v = map.u32(at: 8)
        guard v == version else {
            throw SextantError(
                .unsupportedVersion, "\(path): graph format version \(v) is not supported (this build reads version \(version))")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[0..<60])) == map.u32(at: 60) else {
            throw SextantError(.corrupt, "\(path): offset 0: graph header checksum mismatch")
        }
        let m = Int(map.u32(at: 12))
        let efc = Int(map.u32(at: 16))
        let maxLevel = Int(map.u32(at: 20))
        let count = Int(clamping: map.u64(at: 24))
        let entry = Int(clamping: map.u64(at: 32))
        let blocks = Int(clamping: map.u64(at: 40))
        guard map.u64(at: 48) == segmentID, count == rowCount else {
            throw SextantError(.corrupt, "\(path): graph header does not match segment \(segmentID) (\(rowCount) rows)")
        }
        // A header with a valid checksum can still be crafted: every size must be one the writer could produce,
        // and every product below must stay far from overflowing.
        guard (2...maxNeighborsPerNode).contains(m), entry < max(1, count), maxLevel <= Int(UInt8.max),
            count <= size, blocks <= size / (4 * (m + 1))
        else {
            throw SextantError(
                .corrupt, "\(path): offset 0: impossible graph header (M \(m), max level \(maxLevel), \(count) nodes, entry \(entry), \(blocks) upper blocks)")
        }
        let footerAt = size - 32
        guard Array(map[(footerAt + 24)..<size]) == footerMagic else {
            throw SextantError(.corrupt, "\(path): offset \(footerAt): bad graph footer (file truncated?)")
        }
        let tableOffset = Int(clamping: map.u64(at: footerAt))
        guard tableOffset >= 64, tableOffset <= footerAt - 96,
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[tableOffset..<(tableOffset + 96)])) == map.u32(at: footerAt + 8)
        else {
            throw SextantError(.corrupt, "\(path): offset \(tableOffset): graph section table checksum mismatch")
        }
        let expected = [count, count * 4, count * (2 * m + 1) * 4, blocks * (m + 1) * 4]
        var sections: [(offset: Int, length: Int, crc: UInt32)] = []
        for i in 0..<4 {
            let e = tableOffset + i * 24
            let off = Int(clamping: map.u64(at: e))
            let len = Int(clamping: map.u64(at: e + 8))
            guard len == expected[i], off % 64 == 0, off >= 64, off <= tableOffset, len <= tableOffset - off else {
                throw SextantError(.corrupt, "\(path): offset \(e): graph section \(i) has a bad size or offset")
            }
            sections.append((off, len, map.u32(at: e + 16)))
        }
        let base = map.baseAddress!
        let file = MappedGraphFile(
            io: io, path: path, map: map, sections: sections,
            shape: .init(count: count, neighborsPerNode: m, maxLevel: maxLevel, entryPoint: entry, upperBlocks: blocks))
        let graph = HNSWGraph(
            count: count, neighborsPerNode: m, indexingSearchCount: efc, entryPoint: entry, maxLevel: maxLevel,
            levels: (base + sections[0].offset).assumingMemoryBound(to: UInt8.self),
            level0: UnsafeMutableRawPointer(mutating: base + sections[2].offset).assumingMemoryBound(to: UInt32.self),
            upperOffsets: (base + sections[1].offset).assumingMemoryBound(to: UInt32.self),
            upperLinks: UnsafeMutableRawPointer(mutating: base + sections[3].offset).assumingMemoryBound(to: UInt32.self),
            upperBlockCount: blocks, owner: .mapping(release: { [file] in file.release() }))
        ok = true
        return (graph, file)
    }
}

/// A mapped graph file: unmapped when the graph that uses it goes away; its checksums and structure are
/// verified once, before first use.
package final class MappedGraphFile: @unchecked Sendable {  // immutable but for the atomic flag
    let io: any FileIO
    package let path: String
    let map: UnsafeRawBufferPointer
    let sections: [(offset: Int, length: Int, crc: UInt32)]
    let shape: Shape
    private let verified = Atomic<Bool>(false)

    /// What the header declares; the sections are checked against it.
    struct Shape {
        var count: Int
        var neighborsPerNode: Int
        var maxLevel: Int
        var entryPoint: Int
        var upperBlocks: Int
    }

    init(io: any FileIO, path: String, map: UnsafeRawBufferPointer, sections: [(offset: Int, length: Int, crc: UInt32)], shape: Shape) {
        self.io = io
        self.path = path
        self.map = map
        self.sections = sections
        self.shape = shape
    }

    func release() { io.unmap(map) }

    package var byteCount: Int { map.count }

    /// Checks every section's checksum, then the structure (once).
    package func verify() throws(SextantError) {
        if verified.load(ordering: .acquiring) { return }
        let names = ["levels", "upperOffsets", "level0", "upperLinks"]
        for (i, s) in sections.enumerated() {
            let bytes = UnsafeRawBufferPointer(rebasing: map[s.offset..<(s.offset + s.length)])
            guard CRC32C.checksum(bytes) == s.crc else {
                throw SextantError(.corrupt, "\(path): offset \(s.offset): graph section \(names[i]) checksum mismatch")
            }
        }
        try verifyStructure()
        verified.store(true, ordering: .releasing)
    }

    /// Checksums catch accidents; this stops a crafted file with valid checksums. The search follows links
    /// without bounds checks, so before first use every link must name a node, every node's levels must lie
    /// within the upper blocks, and a link at level l must lead to a node that has level l. O(links): a
    /// one-time pass of about a millisecond per 10,000 nodes.
    private func verifyStructure() throws(SextantError) {
        let n = shape.count, m = shape.neighborsPerNode, m0 = 2 * m
        let levels = map.baseAddress! + sections[0].offset
        func u32(_ section: Int, _ index: Int) -> Int {
            Int(map.loadUnaligned(fromByteOffset: sections[section].offset + index * 4, as: UInt32.self))
        }
        func level(_ node: Int) -> Int { Int(levels.load(fromByteOffset: node, as: UInt8.self)) }
        func fail(_ section: Int, _ index: Int, _ what: String) -> SextantError {
            SextantError(.corrupt, "\(path): offset \(sections[section].offset + index * 4): \(what)")
        }
        if n == 0 { return }
        guard level(shape.entryPoint) == shape.maxLevel else {
            throw SextantError(
                .corrupt, "\(path): offset \(sections[0].offset + shape.entryPoint): the entry point \(shape.entryPoint) is on level \(level(shape.entryPoint)), not the top level \(shape.maxLevel)")
        }
        for node in 0..<n {
            let top = level(node)
            guard top <= shape.maxLevel else {
                throw SextantError(.corrupt, "\(path): offset \(sections[0].offset + node): node \(node) is on level \(top), above the top level \(shape.maxLevel)")
            }
            // Level 0: a count, then links.
            let base0 = node * (m0 + 1)
            let links0 = u32(2, base0)
            guard links0 <= m0 else { throw fail(2, base0, "node \(node) has \(links0) links on level 0, more than \(m0)") }
            for j in 0..<links0 where u32(2, base0 + 1 + j) >= n {
                throw fail(2, base0 + 1 + j, "node \(node) links to node \(u32(2, base0 + 1 + j)) of \(n)")
            }
            guard top > 0 else { continue }
            let first = u32(1, node)
            guard first <= shape.upperBlocks, top <= shape.upperBlocks - first else {
                throw fail(1, node, "node \(node)'s \(top) upper levels start at block \(first) of \(shape.upperBlocks)")
            }
            for l in 1...top {
                let block = (first + l - 1) * (m + 1)
                let k = u32(3, block)
                guard k <= m else { throw fail(3, block, "node \(node) has \(k) links on level \(l), more than \(m)") }
                for j in 0..<k {
                    let target = u32(3, block + 1 + j)
                    guard target < n, level(target) >= l else {
                        throw fail(3, block + 1 + j, "node \(node) links on level \(l) to node \(target), which is not on that level")
                    }
                }
            }
        }
    }
}
