// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// One mutation inside a write batch.
package struct Mutation: Sendable {
    package enum Kind: UInt8, Sendable { case upsert = 1, delete = 2 }
    package var kind: Kind
    package var id: RecordID
    package var key: [UInt8]
    package var vector: [Float]
    /// Compact JSON of the metadata; empty when the record has none.
    package var metadata: [UInt8]
    package var document: String?

    package static func upsert(_ id: RecordID, vector: [Float], metadata: [UInt8], document: String?) -> Mutation {
        Mutation(kind: .upsert, id: id, key: id.key, vector: vector, metadata: metadata, document: document)
    }
    package static func delete(_ id: RecordID) -> Mutation {
        Mutation(kind: .delete, id: id, key: id.key, vector: [], metadata: [], document: nil)
    }
}

/// The framing of WAL records.
///
/// ```
/// record  := length:u32 crc:u32 seq:u64 syncedSeq:u64 type:u8 payload[length]      (version 2; 25-byte header)
/// crc     := CRC32C(seq ‖ syncedSeq ‖ type ‖ payload)
/// payload (type 1, batch) := count:u32 op{count}
/// op      := kind:u8 keyLen:u16 key[keyLen]
///            (kind = upsert) dim:u32 f32[dim] metaLen:u32 meta[metaLen] hasDoc:u8 (docLen:u32 doc[docLen])?
/// ```
///
/// `syncedSeq` is the highest sequence number whose record had been made durable (a completed fsync) when
/// this record was framed. Recovery uses it to tell a crash artifact from damage: a damaged record followed
/// by an intact record whose `syncedSeq` reaches it had been durable, so it cannot have been torn by a
/// crash. Version 1 files (17-byte header, no `syncedSeq`) are still read.
package enum WALRecord {
    /// Header size of the records this build writes (version 2).
    package static let headerSize = 25
    /// Header size of version 1 records (no `syncedSeq`).
    package static let headerSizeV1 = 17
    package static let batchType: UInt8 = 1
    /// A durability mark: no payload, `seq` and `syncedSeq` both the last batch's sequence number. Written (and
    /// fsynced) when a log is closed cleanly, so that damage to the last batch of a cleanly closed log is
    /// recognised as damage, not taken for a torn write. It takes no sequence number of its own.
    package static let markType: UInt8 = 2
    /// Records larger than this are rejected as corrupt when reading (a flipped length byte must not
    /// make us allocate gigabytes), and batches larger than this are refused when writing.
    package static let maxPayload = 1 << 30

    package static func headerSize(version: UInt32) -> Int { version == 1 ? headerSizeV1 : headerSize }

    /// Appends the framed record for `mutations` to `out`.
    package static func encodeBatch(_ mutations: [Mutation], seq: UInt64, syncedSeq: UInt64, into out: inout ByteWriter) {
        let start = out.bytes.count
        out.zeros(headerSize)
        out.u32(UInt32(mutations.count))
        for m in mutations {
            out.u8(m.kind.rawValue)
            out.u16(UInt16(m.key.count))
            out.raw(m.key)
            if m.kind == .upsert {
                out.u32(UInt32(m.vector.count))
                out.floats(m.vector)
                out.u32(UInt32(m.metadata.count))
                out.raw(m.metadata)
                if let doc = m.document {
                    out.u8(1)
                    var utf8 = Array(doc.utf8)
                    out.u32(UInt32(utf8.count))
                    out.raw(utf8)
                    utf8.removeAll()
                } else {
                    out.u8(0)
                }
            }
        }
        let payloadLength = out.bytes.count - start - headerSize
        out.bytes.withUnsafeMutableBytes { buf in
            buf.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: start, as: UInt32.self)
            buf.storeBytes(of: seq.littleEndian, toByteOffset: start + 8, as: UInt64.self)
            buf.storeBytes(of: syncedSeq.littleEndian, toByteOffset: start + 16, as: UInt64.self)
            buf[start + 24] = batchType
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buf[(start + 8)...]))
            buf.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// Appends a durability mark (see ``markType``) for `seq` to `out`.
    package static func encodeMark(seq: UInt64, into out: inout ByteWriter) {
        let start = out.bytes.count
        out.zeros(headerSize)
        out.bytes.withUnsafeMutableBytes { buf in
            buf.storeBytes(of: UInt32(0).littleEndian, toByteOffset: start, as: UInt32.self)
            buf.storeBytes(of: seq.littleEndian, toByteOffset: start + 8, as: UInt64.self)
            buf.storeBytes(of: seq.littleEndian, toByteOffset: start + 16, as: UInt64.self)
            buf[start + 24] = markType
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buf[(start + 8)...]))
            buf.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// Decodes a batch payload. `what` names the file and offset for error messages.
    package static func decodeBatch(_ payload: UnsafeRawBufferPointer, what: String) throws(SextantError) -> [Mutation] {
        var r = ByteReader(payload, what: what)
        let count = Int(try r.u32())
        var out: [Mutation] = []
        out.reserveCapacity(min(count, 1 << 16))
        for _ in 0..<count {
            guard let kind = Mutation.Kind(rawValue: try r.u8()) else {
                throw SextantError(.corrupt, "\(what): unknown mutation kind")
            }
            let keyLen = Int(try r.u16())
            let keyBytes = try r.bytes(keyLen)
            guard let id = RecordID(key: keyBytes) else { throw SextantError(.corrupt, "\(what): invalid record id") }
            if kind == .delete {
                out.append(.delete(id))
                continue
            }
            let dim = Int(try r.u32())
            let vector = try r.floats(dim)
            let metaLen = Int(try r.u32())
            let meta = Array(try r.bytes(metaLen))
            var doc: String? = nil
            if try r.u8() == 1 {
                let docLen = Int(try r.u32())
                doc = String(decoding: try r.bytes(docLen), as: UTF8.self)
            }
            out.append(Mutation(kind: .upsert, id: id, key: Array(keyBytes), vector: vector, metadata: meta, document: doc))
        }
        if r.remaining != 0 { throw SextantError(.corrupt, "\(what): \(r.remaining) trailing bytes in batch") }
        return out
    }
}
