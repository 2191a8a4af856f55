// Sextant — an embedded vector database. Licensed under Apache-2.0.

#if canImport(Glibc)
import Glibc
#endif

/// Reads WAL files: finds the intact records, and decides whether damage is a crash artifact or corruption.
///
/// A crash leaves at most the records of the last, unfinished group commit incomplete, and only at the end
/// of the last log file: a process kill cuts the file short; a power cut may also leave sectors of the
/// unsynced tail zero-filled (in any order). Anything else is corruption:
/// - damage in a file that is not the last one (a log file is fsynced before the next one is created);
/// - damage followed by an intact record whose `syncedSeq` reaches the damaged record (it had been made
///   durable before that later record was written, so no crash can have torn it);
/// - a record that is all there but fails its checksum, with no zero-filled sector in it (what a flipped bit
///   or an overwrite leaves, not what an interrupted append leaves);
/// - a length field that points past the end of the file although the checksum over the rest of the file
///   matches (the record is whole; its length was damaged).
package enum WALReader {
    /// An intact (checksum-valid) record.
    package struct RecordRef: Sendable, Equatable {
        package var offset: Int
        package var end: Int
        package var seq: UInt64
        /// The highest durable sequence number when this record was framed (0 in version 1 files).
        package var syncedSeq: UInt64
        package var type: UInt8
        package var payloadStart: Int
    }

    /// The first damaged spot of a file and what recovery makes of it.
    package struct Damage: Sendable {
        package var offset: Int
        /// What is wrong with the bytes at `offset`.
        package var problem: String
        /// A crash artifact: nothing after it was ever durable, so recovery cuts the file here.
        package var isTornTail: Bool
        /// Why it is corruption (empty for a torn tail).
        package var reason: String
        /// Intact records found after the damage with sequence numbers past the last good one, in file order
        /// (what `repair` can salvage).
        package var intactAfter: [RecordRef]

        package var message: String {
            isTornTail ? "offset \(offset): \(problem) (an incomplete write at the tail of the log, left by a crash)"
                : "offset \(offset): \(problem); \(reason)"
        }
    }

    package struct Scan: Sendable {
        package var version: UInt32
        package var fileNumber: UInt64
        /// Intact records before the first damage.
        package var records: [RecordRef]
        package var damage: Damage?
        package var size: Int
        /// Offset just past the last intact record before any damage.
        package var validEnd: Int { records.last?.end ?? (version == 0 ? 0 : WALFile.headerSize) }
        package var lastSeq: UInt64? { records.last { $0.type != WALRecord.markType }?.seq }
    }

    /// Scans a whole log file held in memory (a mapping). Throws only for a file that is not a Sextant log or
    /// has an unsupported version; damage is described in the result.
    ///
    /// - Parameters:
    ///   - isLastFile: whether no later log file of the collection holds records (only the last file can
    ///     have a torn tail).
    ///   - previousSeq: the sequence number of the last record before this file (or the checkpoint).
    package static func scan(
        _ map: UnsafeRawBufferPointer, path: String, fileNumber expectedNumber: UInt64?, isLastFile: Bool, previousSeq: UInt64
    ) throws(SextantError) -> Scan {
        let size = map.count
        // The header: a file whose header never became durable was being created when the process died.
        if size < WALFile.headerSize || !(Array(map[0..<8]) == WALFile.magic) {
            let zeroOrShort = size < WALFile.headerSize || isZero(map, 0, min(size, WALFile.headerSize))
            if isLastFile && zeroOrShort && findIntact(map, from: 0, version: WALFile.version, after: previousSeq).isEmpty {
                return Scan(
                    version: 0, fileNumber: expectedNumber ?? 0, records: [],
                    damage: Damage(offset: 0, problem: "log header incomplete (\(size) bytes)", isTornTail: true, reason: "", intactAfter: []),
                    size: size)
            }
            if size < WALFile.headerSize {
                throw SextantError(.corrupt, "\(path): offset 0: log header truncated (\(size) bytes) in a log that is not the last one")
            }
            throw SextantError(.corrupt, "\(path): offset 0: not a Sextant log file (bad magic)")
        }
        let version = map.u32(at: 8)
        guard version == 1 || version == WALFile.version else {
            throw SextantError(
                .unsupportedVersion,
                "\(path): log format version \(version) is not supported (this build reads versions 1 and \(WALFile.version))")
        }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[0..<24])) == map.u32(at: 24) else {
            throw SextantError(.corrupt, "\(path): offset 0: log header checksum mismatch")
        }
        let fileNumber = map.u64(at: 16)
        if let expectedNumber, fileNumber != expectedNumber {
            throw SextantError(.corrupt, "\(path): offset 16: the header says log file \(fileNumber), the name says \(expectedNumber)")
        }

        var records: [RecordRef] = []
        var offset = WALFile.headerSize
        var last = previousSeq
        while offset < size {
            if let r = intactRecord(map, at: offset, version: version) {
                records.append(r)
                if r.type != WALRecord.markType { last = r.seq }
                offset = r.end
                continue
            }
            let damage = classify(map, at: offset, version: version, isLastFile: isLastFile, lastSeq: last)
            return Scan(version: version, fileNumber: fileNumber, records: records, damage: damage, size: size)
        }
        return Scan(version: version, fileNumber: fileNumber, records: records, damage: nil, size: size)
    }

    /// The outcome of ``replay(io:path:fileNumber:isLastFile:previousSeq:tolerateDamage:_:)``.
    package struct Outcome {
        /// Offset just past the last record replayed.
        package var validEnd: Int64
        /// A crash artifact was found at `validEnd` (recovery cuts the file there).
        package var tornTail: Bool
        /// Corruption that stopped the replay (only with `tolerateDamage`; otherwise it is thrown).
        package var damage: SextantError?
        package var lastSeq: UInt64
        package var records: Int
    }

    /// Calls `body` for each batch in order, up to the first damage. A torn tail is reported in the outcome;
    /// corruption is thrown as ``SextantError/Code/corrupt`` naming the file and offset — or, with
    /// `tolerateDamage`, returned in the outcome after replaying the records before it.
    package static func replay(
        io: any FileIO, path: String, fileNumber: UInt64?, isLastFile: Bool, previousSeq: UInt64, tolerateDamage: Bool = false,
        salvage: Bool = false, _ body: (UInt64, [Mutation]) throws(SextantError) -> Void
    ) throws(SextantError) -> Outcome {
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let size = Int(try io.size(fd, path: path))
        let map = try io.mapReadOnly(fd, length: size, path: path)
        defer { io.unmap(map) }
        return try replay(
            map, path: path, fileNumber: fileNumber, isLastFile: isLastFile, previousSeq: previousSeq, tolerateDamage: tolerateDamage,
            salvage: salvage, body)
    }

    /// ``replay(io:path:fileNumber:isLastFile:previousSeq:tolerateDamage:_:)`` over bytes in memory.
    package static func replay(
        _ map: UnsafeRawBufferPointer, path: String, fileNumber: UInt64?, isLastFile: Bool, previousSeq: UInt64,
        tolerateDamage: Bool = false, salvage: Bool = false, _ body: (UInt64, [Mutation]) throws(SextantError) -> Void
    ) throws(SextantError) -> Outcome {
        let scan = try scan(map, path: path, fileNumber: fileNumber, isLastFile: isLastFile, previousSeq: previousSeq)
        var lastSeq = previousSeq
        // Salvage (repair) also takes the intact records found after damage.
        let taken = scan.records + (salvage && scan.damage?.isTornTail == false ? scan.damage!.intactAfter : [])
        for r in taken {
            if r.type == WALRecord.markType && scan.version >= 2 { continue }
            guard r.type == WALRecord.batchType else {
                throw SextantError(.corrupt, "\(path): offset \(r.offset): unknown record type \(r.type)")
            }
            let what = "\(path): record at offset \(r.offset)"
            let mutations = try WALRecord.decodeBatch(UnsafeRawBufferPointer(rebasing: map[r.payloadStart..<r.end]), what: what)
            try body(r.seq, mutations)
            lastSeq = r.seq
        }
        var outcome = Outcome(validEnd: Int64(scan.validEnd), tornTail: false, damage: nil, lastSeq: lastSeq, records: scan.records.count)
        if let d = scan.damage {
            if d.isTornTail {
                outcome.tornTail = true
            } else {
                let error = SextantError(.corrupt, "\(path): \(d.message)")
                guard tolerateDamage || salvage else { throw error }
                outcome.damage = error
            }
        }
        return outcome
    }

    /// The first intact batch in the log file at `path` whose sequence number is past `checkpoint`, if any —
    /// what proves a file the manifest calls obsolete is still needed. Damage is looked past, not reported.
    package static func firstBatch(after checkpoint: UInt64, io: any FileIO, path: String, fileNumber: UInt64) -> UInt64? {
        guard let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else { return nil }
        defer { io.close(fd) }
        guard let size = try? io.size(fd, path: path), let map = try? io.mapReadOnly(fd, length: Int(size), path: path) else { return nil }
        defer { io.unmap(map) }
        guard let scan = try? scan(map, path: path, fileNumber: fileNumber, isLastFile: false, previousSeq: 0) else { return nil }
        let records = scan.records + (scan.damage?.intactAfter ?? [])
        return records.first { $0.type == WALRecord.batchType && $0.seq > checkpoint }?.seq
    }

    // MARK: Records

    /// The intact record at `offset`, or nil.
    @inline(__always)
    static func intactRecord(_ map: UnsafeRawBufferPointer, at offset: Int, version: UInt32) -> RecordRef? {
        let hs = WALRecord.headerSize(version: version)
        guard offset >= 0, map.count - offset >= hs else { return nil }
        let length = Int(map.u32(at: offset))
        guard length <= WALRecord.maxPayload else { return nil }
        let end = offset + hs + length
        guard end <= map.count else { return nil }
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[(offset + 8)..<end])) == map.u32(at: offset + 4) else { return nil }
        let seq = map.u64(at: offset + 8)
        let synced = version == 1 ? 0 : map.u64(at: offset + 16)
        return RecordRef(offset: offset, end: end, seq: seq, syncedSeq: synced, type: map[offset + hs - 1], payloadStart: offset + hs)
    }

    /// Intact records starting after `from` whose sequence numbers are plausible successors of `after`
    /// (greater, and not further than the bytes left could hold; a durability mark may repeat the last
    /// one), found by sliding over every byte offset.
    static func findIntact(_ map: UnsafeRawBufferPointer, from: Int, version: UInt32, after: UInt64) -> [RecordRef] {
        let hs = WALRecord.headerSize(version: version)
        let minRecord = UInt64(hs)
        var found: [RecordRef] = []
        var p = from
        var last = after
        while p + hs <= map.count {
            let seq = map.u64(at: p + 8)
            let room = UInt64(map.count - p) / minRecord + 1
            if seq >= last, seq - last <= room, let r = intactRecord(map, at: p, version: version) {
                let isMark = version >= 2 && r.type == WALRecord.markType
                if (isMark && r.syncedSeq == r.seq && r.seq > after) || (!isMark && r.seq > last && (version == 1 || r.syncedSeq < r.seq)) {
                    found.append(r)
                    if !isMark { last = r.seq }
                    p = r.end
                    continue
                }
            }
            p += 1
        }
        return found
    }

    /// Decides what the damaged record at `offset` is (see the type's discussion).
    static func classify(_ map: UnsafeRawBufferPointer, at offset: Int, version: UInt32, isLastFile: Bool, lastSeq: UInt64) -> Damage {
        let hs = WALRecord.headerSize(version: version)
        let size = map.count
        let expected = lastSeq &+ 1
        let problem: String
        if size - offset < hs {
            problem = "record header truncated (\(size - offset) bytes)"
        } else {
            let length = Int(map.u32(at: offset))
            if length > WALRecord.maxPayload || offset + hs + length > size {
                problem = "record length \(length) runs past the end of the file"
            } else {
                problem = "record checksum mismatch"
            }
        }
        let after = findIntact(map, from: offset + 1, version: version, after: lastSeq)
        func corrupt(_ reason: String) -> Damage {
            Damage(offset: offset, problem: problem, isTornTail: false, reason: reason, intactAfter: after)
        }
        if !isLastFile {
            return corrupt("the log file is not the last one, so this record had been made durable")
        }
        if version >= 2, let proof = after.first(where: { $0.syncedSeq >= expected }) {
            return corrupt("an intact record written after this one was durable follows it (sequence \(proof.seq) at offset \(proof.offset))")
        }
        if version == 1, let next = after.first {
            return corrupt("an intact record with a later sequence number follows it (sequence \(next.seq) at offset \(next.offset))")
        }
        if !looksTorn(map, at: offset, version: version) {
            return corrupt("the record is complete but its bytes were changed after it was written")
        }
        return Damage(offset: offset, problem: problem, isTornTail: true, reason: "", intactAfter: after)
    }

    /// Whether the damaged record at `offset` looks like an interrupted append: cut short by the end of the
    /// file, or with a 512-byte sector (or the part of one it covers) left zero-filled.
    static func looksTorn(_ map: UnsafeRawBufferPointer, at offset: Int, version: UInt32) -> Bool {
        let hs = WALRecord.headerSize(version: version)
        let size = map.count
        if size - offset < hs { return true }
        let length = Int(map.u32(at: offset))
        if length > WALRecord.maxPayload {
            return hasZeroSector(map, offset, offset + hs)
        }
        let end = offset + hs + length
        if version >= 2 && length == 0 && end == size && map[offset + hs - 1] == WALRecord.markType {
            // A damaged durability mark at the very end: it carries no data; losing it loses nothing.
            return true
        }
        if end > size {
            // Cut short — unless the rest of the file is exactly the record with a damaged length field.
            let rest = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: map[(offset + 8)..<size]))
            return rest != map.u32(at: offset + 4) || isZero(map, offset, size)
        }
        return hasZeroSector(map, offset, end)
    }

    /// Whether some 512-byte sector's part of `[from, to)` is all zeros.
    static func hasZeroSector(_ map: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> Bool {
        var a = from
        while a < to {
            let b = min(to, (a / 512 + 1) * 512)
            if isZero(map, a, b) { return true }
            a = b
        }
        return false
    }

    static func isZero(_ map: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> Bool {
        var i = from
        while i < to {
            if map[i] != 0 { return false }
            i += 1
        }
        return true
    }
}
