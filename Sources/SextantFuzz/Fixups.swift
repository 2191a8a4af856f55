// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Sextant

/// Checksum fix-ups: each recomputes, in place, the checksums a writer would have written for the bytes the
/// fuzzer produced — wherever the (possibly damaged) structure says they are — so the input gets past the
/// checksum checks into the parsing behind them. A crafted file carries valid checksums; these let the
/// fuzzer make one. Anything out of bounds is left alone (the reader then refuses it).
enum Fixup {
    /// Write-ahead log: the header's, then each record's, following the length fields.
    static func wal(_ b: inout [UInt8]) {
        guard b.count >= 32 else { return }
        b.put(b.crc(0..<24), at: 24)
        let hs = b.u32(at: 8) == 1 ? 17 : 25
        var at = 32
        while at + hs <= b.count {
            let length = Int(b.u32(at: at))
            guard length <= b.count - at - hs else { return }
            b.put(b.crc((at + 8)..<(at + hs + length)), at: at + 4)
            at += hs + length
        }
    }

    /// Segment: each section's (in the table), the table's (in the footer), the header's.
    static func segment(_ b: inout [UInt8]) {
        guard b.count >= 96 else { return }
        let footerAt = b.count - 32
        let tableOffset = b.u64(at: footerAt)
        let count = UInt64(b.u32(at: footerAt + 8))
        if tableOffset <= UInt64(footerAt), count <= (UInt64(footerAt) - tableOffset) / 32 {
            let table = Int(tableOffset)
            for i in 0..<Int(count) {
                let e = table + i * 32
                let off = b.u64(at: e + 8), len = b.u64(at: e + 16)
                if off <= UInt64(table), len <= UInt64(table) - off { b.put(b.crc(Int(off)..<Int(off + len)), at: e + 24) }
            }
            b.put(b.crc(table..<(table + Int(count) * 32)), at: footerAt + 12)
        }
        b.put(b.crc(0..<60), at: 60)
    }

    /// Graph file: sections (table), table (footer), header.
    static func graph(_ b: inout [UInt8]) {
        guard b.count >= 96 else { return }
        let footerAt = b.count - 32
        let tableOffset = b.u64(at: footerAt)
        if tableOffset <= UInt64(footerAt), UInt64(footerAt) - tableOffset >= 96 {
            let table = Int(tableOffset)
            for i in 0..<4 {
                let e = table + i * 24
                let off = b.u64(at: e), len = b.u64(at: e + 8)
                if off <= UInt64(table), len <= UInt64(table) - off { b.put(b.crc(Int(off)..<Int(off + len)), at: e + 16) }
            }
            b.put(b.crc(table..<(table + 96)), at: footerAt + 8)
        }
        b.put(b.crc(0..<60), at: 60)
    }

    /// int8 codes: the header's, and the codes' and norms' (in the footer), at the places the header's
    /// count and dimension put them.
    static func quantized(_ b: inout [UInt8]) {
        guard b.count >= 80 else { return }
        b.put(b.crc(0..<60), at: 60)
        let dimension = UInt64(b.u32(at: 12)), count = b.u64(at: 16)
        let (codeBytes, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard !overflow, codeBytes <= UInt64(b.count), count <= UInt64(b.count) else { return }
        let normsAt = 64 + Int(codeBytes) + (64 - Int(codeBytes) % 64) % 64
        guard normsAt + Int(count) * 4 + 16 == b.count else { return }
        b.put(b.crc(64..<(64 + Int(codeBytes))), at: b.count - 16)
        b.put(b.crc(normsAt..<(normsAt + Int(count) * 4)), at: b.count - 12)
    }

    /// A file whose last four bytes are the CRC-32C of everything before them (deletion, payload index).
    static func trailing(_ b: inout [UInt8]) {
        guard b.count >= 4 else { return }
        b.put(b.crc(0..<(b.count - 4)), at: b.count - 4)
    }

    /// Snapshot archive: every entry's (after fixing up the entry itself by its kind), the footer's.
    static func archive(_ b: inout [UInt8]) {
        guard b.count >= 16 + 28 else { return }
        var at = 16
        var crcs = ByteWriter()
        var entries: UInt64 = 0
        while at + 12 <= b.count - 28 {
            let pathLength = Int(b.u32(at: at))
            guard pathLength > 0, pathLength < 4096, at + 4 + pathLength + 8 <= b.count else { break }
            let path = String(decoding: b[(at + 4)..<(at + 4 + pathLength)], as: UTF8.self)
            let start = at + 4 + pathLength + 8
            let length = b.u64(at: at + 4 + pathLength)
            guard length <= UInt64(b.count - start), start + Int(length) + 4 <= b.count else { break }
            var entry = Array(b[start..<(start + Int(length))])
            file(path, &entry)
            b.replaceSubrange(start..<(start + Int(length)), with: entry)
            let crc = entry.withUnsafeBytes { CRC32C.checksum($0) }
            b.put(crc, at: start + Int(length))
            crcs.u32(crc)
            entries += 1
            at = start + Int(length) + 4
        }
        let footer = b.count - 28
        b.put(entries, at: footer + 8)
        b.put(CRC32C.checksum(crcs.bytes), at: footer + 24)
    }

    /// Fixes up a database file by the kind its name says.
    static func file(_ path: String, _ b: inout [UInt8]) {
        if path.hasSuffix(".seg") {
            segment(&b)
        } else if path.hasSuffix(".hnsw") {
            graph(&b)
        } else if path.hasSuffix(".q8") {
            quantized(&b)
        } else if path.hasSuffix(".del") || path.hasSuffix(".pidx") {
            trailing(&b)
        } else if path.hasSuffix(".log") {
            wal(&b)
        }
    }

    /// The manifest around a JSON payload, as `Manifest.encoded()` frames it.
    static func manifest(json: UnsafeRawBufferPointer) -> [UInt8] {
        var w = ByteWriter()
        w.raw(Array("SEXTMAN\0".utf8))
        w.u32(1)
        w.u32(UInt32(json.count))
        w.raw(json)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }
}
