// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Synchronization

/// How a restore meets an existing collection of the same name.
public enum RestoreMode: String, Sendable, Hashable, CaseIterable {
    /// Replace it (or create it): the collection becomes exactly the export.
    case override
    /// Add the export's records to it (or create it); ids present on both sides follow ``ConflictPolicy``.
    case merge
    /// Create it; fail if it exists.
    case new
}

/// What a merge does with a record whose id the collection already has.
public enum ConflictPolicy: String, Sendable, Hashable, CaseIterable {
    /// Keep the collection's record.
    case skip
    /// Replace it with the export's.
    case overwrite
    /// Abort the restore; nothing changes.
    case fail
}

/// Options of ``Database/restore(from:options:progress:)``.
public struct RestoreOptions: Sendable {
    /// The collection to restore into; default: the exported collection's name.
    public var into: String?
    public var mode: RestoreMode
    public var onConflict: ConflictPolicy
    /// Check everything (checksums, configuration, conflicts) and report counts without changing anything.
    public var dryRun: Bool
    /// Give integer ids new values after the collection's largest integer id (string ids are kept), so
    /// nothing conflicts; the mapping goes to `mappingFile` (JSON Lines `{"from": old, "to": new}`).
    public var remapIDs: Bool
    public var mappingFile: String?

    public init(
        into: String? = nil, mode: RestoreMode = .new, onConflict: ConflictPolicy = .fail, dryRun: Bool = false, remapIDs: Bool = false,
        mappingFile: String? = nil
    ) {
        self.into = into
        self.mode = mode
        self.onConflict = onConflict
        self.dryRun = dryRun
        self.remapIDs = remapIDs
        self.mappingFile = mappingFile
    }
}

/// What a restore did (or, with `dryRun`, would do).
public struct RestoreSummary: Sendable, Hashable {
    public var collection: String
    public var mode: RestoreMode
    /// Records in the export.
    public var records: Int
    /// Records new to the collection.
    public var added: Int
    /// Conflicting records kept as they were (`skip`).
    public var skipped: Int
    /// Conflicting records replaced (`overwrite`, and every record of `override`).
    public var overwritten: Int
    /// Ids present on both sides (merge).
    public var conflicts: Int
    public var dryRun: Bool
}

extension Database {
    /// Restores an export directory (``VectorCollection/export(to:options:progress:)``) into a collection.
    ///
    /// Every file is checked against the manifest's size and CRC-32C before its records are used, and the
    /// restore builds a hidden collection that is swapped in by one manifest publish at the end — so a
    /// damaged file, a conflict under `.fail`, an error or a cancellation (throw from `progress`) changes
    /// nothing. A merge starts from a hard-linked copy of the collection and refuses writes to it
    /// (``SextantError/Code/locked``) until the swap, so no write is lost.
    @discardableResult
    public func restore(
        from directory: String, options: RestoreOptions = RestoreOptions(), progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) -> RestoreSummary {
        let io = core.io
        let manifest = try Self.loadExportManifest(io, directory)
        try manifest.compression.checkAvailable()
        let target = options.into ?? manifest.collection.name
        try Self.validateName(target)
        let existing = collectionNames().contains(target) ? try collection(target) : nil
        if options.mode == .new, existing != nil {
            throw SextantError(.alreadyExists, "collection '\(target)' already exists (use --mode override to replace it or --mode merge to add to it)")
        }
        let merging = options.mode == .merge && existing != nil
        if merging, let c = existing, c.dimension != manifest.collection.dimension || c.metric != manifest.collection.metric {
            throw SextantError(
                .dimensionMismatch,
                "cannot merge: collection '\(target)' is \(c.dimension)-d \(c.metric), the export is \(manifest.collection.dimension)-d \(manifest.collection.metric)")
        }
        if options.remapIDs && !merging && options.mode != .new && existing != nil {
            throw SextantError(.invalidArgument, "remapping ids applies to merge and new restores")
        }
        var summary = RestoreSummary(
            collection: target, mode: options.mode, records: manifest.records, added: 0, skipped: 0, overwritten: 0, conflicts: 0,
            dryRun: options.dryRun)
        let work = path + "/restore-\(getpid())-\(hex16(UInt64.random(in: 1...UInt64.max))).tmp"
        try io.makeDirectory(work)
        defer { try? io.removeTree(work) }
        var done = 0
        func report(_ phase: String) throws(SextantError) {
            do { try progress(ProgressEvent(phase: phase, records: done, totalRecords: manifest.records, bytes: 0)) } catch {
                throw SextantError(.cancelled, "the restore of '\(target)' was cancelled")
            }
        }

        // Ids for remapping: after the largest integer id of the collection.
        var nextID: UInt64 = 0
        if options.remapIDs, let c = existing {
            for id in try c.scroll(limit: Int.max / 2, include: []).records.map(\.id) {
                if case .int(let v) = id { nextID = max(nextID, v &+ 1) }
            }
        }
        var mapping: [(RecordID, RecordID)] = []

        if options.dryRun {
            for (i, chunk) in manifest.chunks.enumerated() {
                let (vectors, records) = try Self.unpack(io, directory, manifest, chunk, i, into: work)
                if merging, let c = existing {
                    let ids = try Self.ids(inRecords: records).filter { id in
                        if case .int = id { return !options.remapIDs }  // remapped ids never conflict
                        return true
                    }
                    let found = Set(try c.get(ids, include: []).map(\.id))
                    summary.conflicts += found.count
                    switch options.onConflict {
                    case .skip: summary.skipped += found.count
                    case .overwrite: summary.overwritten += found.count
                    case .fail: break
                    }
                    summary.added += chunk.records - found.count
                } else {
                    summary.added += chunk.records
                }
                done += chunk.records
                try? io.unlink(records)
                if let vectors { try? io.unlink(vectors) }
                try report("verify")
            }
            if options.mode == .override, let c = existing { summary.overwritten = try c.count() }
            return summary
        }

        // Build the new state in a hidden collection.
        let staging: VectorCollection
        if merging, let c = existing {
            c.state.withLock { $0.writeBlock = "collection '\(target)' is being restored into (merge); writes resume when the restore ends" }
            staging = try copyForMerge(c, work: work)
        } else {
            staging = try createStagingCollection(
                dimension: manifest.collection.dimension, metric: manifest.collection.metric, index: manifest.collection.index)
        }
        var published = false
        defer {
            if !published {
                try? dropCollection(staging.name)
                if merging { existing?.state.withLock { $0.writeBlock = nil } }
            }
        }
        var failure: SextantError?
        for (i, chunk) in manifest.chunks.enumerated() {
            let (vectors, records) = try Self.unpack(io, directory, manifest, chunk, i, into: work)
            let source: ImportSource = vectors.map { .npy(vectors: $0, ids: nil, records: records) } ?? .jsonLines(path: records)
            let before = done
            do {
                _ = try staging.importRecords(from: source, batchSize: 1000, transform: { (batch) throws -> [Mutation] in
                    var batch = batch
                    if options.remapIDs {
                        for k in batch.indices {
                            guard case .int = batch[k].id else { continue }
                            let new = RecordID.int(nextID)
                            nextID &+= 1
                            mapping.append((batch[k].id, new))
                            batch[k] = .upsert(new, vector: batch[k].vector, metadata: batch[k].metadata, document: batch[k].document)
                        }
                    }
                    guard merging else {
                        summary.added += batch.count
                        return batch
                    }
                    let found = Set(try staging.get(batch.map(\.id), include: []).map(\.id))
                    summary.conflicts += found.count
                    summary.added += batch.count - found.count
                    switch options.onConflict {
                    case .skip:
                        summary.skipped += found.count
                        return batch.filter { !found.contains($0.id) }
                    case .overwrite:
                        summary.overwritten += found.count
                        return batch
                    case .fail:
                        if let first = batch.first(where: { found.contains($0.id) }) {
                            throw SextantError(.alreadyExists, "record \(first.id) already exists in '\(target)' (--on-conflict fail); nothing was restored")
                        }
                        return batch
                    }
                }) { n in
                    done = before + n
                    try report("restore")
                }
            } catch let e as SextantError {
                failure = e
            } catch {
                failure = SextantError(.cancelled, "the restore of '\(target)' was cancelled")
            }
            if let failure { throw failure }
            try? io.unlink(records)
            if let vectors { try? io.unlink(vectors) }
        }
        if !merging {
            for spec in manifest.collection.payloadIndexes { try staging.createPayloadIndex(spec.key, type: spec.type) }
            if let c = existing, options.mode == .override { summary.overwritten = try c.count() }
        }
        if let file = options.mappingFile, !mapping.isEmpty || options.remapIDs {
            var out: [UInt8] = []
            for (from, to) in mapping {
                out.append(contentsOf: Array(#"{"from":"#.utf8))
                out.append(contentsOf: Array(JSONWriter.write(from.jsonValue)))
                out.append(contentsOf: Array(#","to":"#.utf8))
                out.append(contentsOf: Array(JSONWriter.write(to.jsonValue)))
                out.append(contentsOf: Array("}\n".utf8))
            }
            try io.writeFileAtomically(file, out)
        }
        try staging.flush()
        try swapIn(staging, as: target)
        published = true
        return summary
    }

    /// A hidden collection holding the same records as `c` (hard links to its files, copies of its log).
    private func copyForMerge(_ c: VectorCollection, work: String) throws(SextantError) -> VectorCollection {
        let snapshotDir = work + "/copy"
        try core.io.makeDirectory(snapshotDir)
        try core.io.makeDirectory(snapshotDir + "/collections")
        var (entry, _, _) = try c.linkFilesForSnapshot(into: snapshotDir)
        let source = snapshotDir + "/collections/" + hex16(entry.id)
        entry.name = Self.stagingPrefix + hex16(UInt64.random(in: 1...UInt64.max))
        try replaceCollections(with: [entry]) { (e, target) throws(SextantError) in
            for file in try core.io.listDirectory(source) where file != "wal" {
                try core.io.link(source + "/" + file, to: target + "/" + file)
            }
            for file in try core.io.listDirectory(source + "/wal") {
                try core.io.copyFile(source + "/wal/" + file, to: target + "/wal/" + file)
            }
        }
        return try collection(entry.name)
    }

    static func loadExportManifest(_ io: any FileIO, _ directory: String) throws(SextantError) -> ExportManifest {
        let path = directory + "/manifest.json"
        guard io.exists(path) else {
            throw SextantError(
                .notFound,
                io.isDirectory(directory)
                    ? "\(directory) is not a complete export: manifest.json is missing (an export that did not finish?)"
                    : "\(directory): no such export directory")
        }
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        let m: ExportManifest
        do { m = try dec.decode(ExportManifest.self, from: Data(try io.readFile(path))) } catch let e as SextantError {
            throw e
        } catch {
            throw SextantError(.corrupt, "\(path): not a valid export manifest: \(error)")
        }
        guard m.format == ExportManifest.formatName else { throw SextantError(.corrupt, "\(path): not a Sextant export (format '\(m.format)')") }
        guard m.version == ExportManifest.formatVersion else {
            throw SextantError(.unsupportedVersion, "\(path): export format version \(m.version) is not supported (this build reads \(ExportManifest.formatVersion))")
        }
        guard m.chunks.reduce(0, { $0 + $1.records }) == m.records else {
            throw SextantError(.corrupt, "\(path): the chunks hold \(m.chunks.reduce(0) { $0 + $1.records }) records, the manifest says \(m.records)")
        }
        for c in m.chunks {
            for f in [c.vectors, c.recordsFile].compactMap({ $0 }) {
                let p = directory + "/" + f.file
                guard !f.file.contains("/"), io.exists(p) else { throw SextantError(.corrupt, "\(p): missing from the export") }
                let size = try fileSize(io, p)
                guard size == f.bytes else { throw SextantError(.corrupt, "\(p): \(size) bytes, the manifest says \(f.bytes)") }
            }
        }
        return m
    }

    /// Decompresses one chunk's files into `work`, checking sizes and checksums; returns their paths.
    static func unpack(
        _ io: any FileIO, _ directory: String, _ m: ExportManifest, _ chunk: ExportManifest.Chunk, _ i: Int, into work: String
    ) throws(SextantError) -> (vectors: String?, records: String) {
        func one(_ f: ExportManifest.FileInfo, _ name: String) throws(SextantError) -> String {
            let out = work + "/" + name
            let (crc, bytes) = try decompress(io: io, directory + "/" + f.file, compression: m.compression, to: out)
            guard bytes == f.contentBytes, crc == f.crc32c else {
                throw SextantError(.corrupt, "\(directory)/\(f.file): checksum mismatch (the file is damaged); nothing was restored")
            }
            return out
        }
        let vectors = try chunk.vectors.map { (f) throws(SextantError) in try one(f, "vectors-\(i).npy") }
        if let vectors {
            let npy = try NPYFile(path: vectors)
            guard npy.rows == chunk.records, npy.columns == m.collection.dimension else {
                throw SextantError(.corrupt, "\(directory)/\(chunk.vectors!.file): holds \(npy.rows) × \(npy.columns), the manifest says \(chunk.records) × \(m.collection.dimension)")
            }
        }
        return (vectors, try one(chunk.recordsFile, "records-\(i).jsonl"))
    }

    /// The ids of a records file (for dry-run conflict counts).
    static func ids(inRecords path: String) throws(SextantError) -> [RecordID] {
        let text = try PosixFileIO().readFile(path)
        var out: [RecordID] = []
        var start = 0
        for i in text.indices where text[i] == 0x0A {
            if i > start {
                let line = try JSONParser.parse(Array(text[start..<i]))
                switch line["id"] {
                case .int(let v)?: if v >= 0 { out.append(.int(UInt64(v))) }
                case .double(let d)?: if d >= 0, d == d.rounded(), d < 1.8e19 { out.append(.int(UInt64(d))) }
                case .string(let s)?: out.append(.string(s))
                default: break
                }
            }
            start = i + 1
        }
        return out
    }
}

extension RecordID {
    var jsonValue: JSONValue {
        switch self {
        case .int(let v): return v <= UInt64(Int64.max) ? .int(Int64(v)) : .double(Double(v))
        case .string(let s): return .string(s)
        }
    }
}
