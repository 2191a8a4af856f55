// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// The database's table of contents: collections, their configuration, their live segments and
/// deletion generations, and how far each collection's WAL has been checkpointed into segments.
///
/// ```
/// MANIFEST-<gen> := magic "SEXTMAN\0" version:u32 length:u32 json[length] crc:u32
/// CURRENT        := "MANIFEST-<gen>\n"
/// ```
/// Published atomically: write `MANIFEST-<gen+1>` (fsync), then replace `CURRENT` by temp + fsync + rename +
/// fsync of the directory. The JSON is small, so Foundation's coders are fine here.
package struct Manifest: Codable, Sendable, Equatable {
    package static let magic: [UInt8] = Array("SEXTMAN\0".utf8)
    package static let version: UInt32 = 1

    package struct SegmentEntry: Codable, Sendable, Equatable {
        package var id: UInt64
        package var rows: Int
        /// 0 = no deletion file.
        package var deletionGeneration: UInt64
        package var bytes: Int
        /// Whether `<id>.hnsw` holds this segment's graph (absent in manifests written before graphs existed).
        package var graph: Bool? = nil
        /// Whether `<id>.q8` holds the segment's int8 codes (published together with the graph).
        package var quantized: Bool? = nil
        /// The generation of `<id>.<generation>.pidx`, the segment's payload index file (absent: none yet).
        package var payload: UInt64? = nil
    }

    package struct CollectionEntry: Codable, Sendable, Equatable {
        package var id: UInt64
        package var name: String
        package var dimension: Int
        package var metric: Metric
        package var createdAt: Double
        package var segments: [SegmentEntry]
        /// Every WAL batch with seq ≤ this is in the segments.
        package var checkpointSeq: UInt64
        /// WAL files numbered below this hold only checkpointed batches and may be deleted.
        package var firstLiveWALFile: UInt64
        package var nextSegmentID: UInt64
        package var nextDeletionGeneration: UInt64
        /// How sealed segments are indexed (absent: the defaults).
        package var index: IndexConfiguration? = nil
        /// The payload fields indexed (absent: none).
        package var payloadIndexes: [PayloadIndexSpec]? = nil
    }

    package var generation: UInt64 = 0
    package var nextCollectionID: UInt64 = 1
    package var collections: [CollectionEntry] = []

    package func encoded() throws(SextantError) -> [UInt8] {
        let json: Data
        do {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            json = try enc.encode(self)
        } catch {
            throw SextantError(.io, "could not encode the manifest: \(error)")
        }
        var w = ByteWriter(capacity: json.count + 20)
        w.raw(Manifest.magic)
        w.u32(Manifest.version)
        w.u32(UInt32(json.count))
        w.raw(Array(json))
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    package static func decode(_ bytes: [UInt8], path: String) throws(SextantError) -> Manifest {
        guard bytes.count >= 20, Array(bytes[0..<8]) == magic else {
            throw SextantError(.corrupt, "\(path): offset 0: not a Sextant manifest")
        }
        return try bytes.withBytes { (b) throws(SextantError) -> Manifest in
            let version = b.u32(at: 8)
            guard version == Manifest.version else {
                throw SextantError(.unsupportedVersion, "\(path): manifest version \(version) is not supported (this build reads version \(Manifest.version))")
            }
            let length = Int(b.u32(at: 12))
            guard 16 + length + 4 == b.count else {
                throw SextantError(.corrupt, "\(path): offset 12: manifest length \(length) does not match the file size \(b.count)")
            }
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<(16 + length)])) == b.u32(at: 16 + length) else {
                throw SextantError(.corrupt, "\(path): offset \(16 + length): manifest checksum mismatch")
            }
            do {
                return try JSONDecoder().decode(Manifest.self, from: Data(b[16..<(16 + length)]))
            } catch {
                throw SextantError(.corrupt, "\(path): manifest JSON is invalid: \(error)")
            }
        }
    }

    package static func fileName(_ generation: UInt64) -> String { "MANIFEST-" + hex16(generation) }

    /// Consistency checks beyond the checksum (a crafted manifest carries a valid one): returns the problems
    /// of each collection entry, by index. A collection with a problem does not open; the others do.
    ///
    /// Checked: names (valid, unique), ids (unique, below `nextCollectionID`), dimension and metric, segment
    /// ids (unique, below `nextSegmentID`), row and byte counts, deletion and index generations (below
    /// `nextDeletionGeneration`), and `firstLiveWALFile` ≥ 1.
    package func inconsistencies() -> [Int: String] {
        var problems: [Int: String] = [:]
        var byName: [String: [Int]] = [:]
        var byID: [UInt64: [Int]] = [:]
        for (i, c) in collections.enumerated() {
            byName[c.name, default: []].append(i)
            byID[c.id, default: []].append(i)
        }
        for (name, list) in byName where list.count > 1 {
            for i in list { problems[i] = "the manifest names \(list.count) collections '\(name)'" }
        }
        for (id, list) in byID where list.count > 1 {
            for i in list { problems[i] = problems[i] ?? "the manifest gives \(list.count) collections the id \(id) (one directory)" }
        }
        for (i, c) in collections.enumerated() where problems[i] == nil {
            if let p = c.inconsistency(nextCollectionID: nextCollectionID) { problems[i] = p }
        }
        return problems
    }
}

extension Manifest.CollectionEntry {
    /// The first inconsistency of this entry, or nil.
    func inconsistency(nextCollectionID: UInt64) -> String? {
        let validName: Bool
        do { try Database.validateName(name); validName = true } catch { validName = name.hasPrefix(Database.stagingPrefix) && name.utf8.count <= 80 }
        if !validName { return "a collection has an invalid name (\(name.utf8.count) bytes)" }
        if id == 0 || id >= nextCollectionID { return "collection id \(id) is not below nextCollectionID \(nextCollectionID)" }
        if !(1...65536).contains(dimension) { return "dimension \(dimension) is out of range" }
        if firstLiveWALFile == 0 { return "firstLiveWALFile is 0" }
        var seen = Set<UInt64>()
        for s in segments {
            if !seen.insert(s.id).inserted { return "segment \(s.id) is listed twice" }
            if s.id == 0 || s.id >= nextSegmentID { return "segment id \(s.id) is not below nextSegmentID \(nextSegmentID)" }
            if s.rows < 0 || s.bytes < 0 || s.rows > Int(UInt32.max) { return "segment \(s.id) has an impossible size" }
            if s.deletionGeneration >= nextDeletionGeneration { return "segment \(s.id)'s deletion generation is not below nextDeletionGeneration" }
            if let g = s.payload, g == 0 || g >= nextDeletionGeneration { return "segment \(s.id)'s index generation is not below nextDeletionGeneration" }
        }
        if let specs = payloadIndexes, Set(specs.map(\.key)).count != specs.count { return "a payload field is indexed twice" }
        return nil
    }
}
