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
    /// The key of an encrypted export (``ExportOptions/encryptionKey``). Every byte is authenticated
    /// before it is used. Given for an export that is not encrypted, the restore is refused
    /// (``SextantError/Code/invalidArgument``): a plain export could have been put in place of the
    /// encrypted one. The default is nil.
    public var encryptionKey: EncryptionKey?

    public init(
        into: String? = nil, mode: RestoreMode = .new, onConflict: ConflictPolicy = .fail, dryRun: Bool = false, remapIDs: Bool = false,
        mappingFile: String? = nil, encryptionKey: EncryptionKey? = nil
    ) {
        self.into = into
        self.mode = mode
        self.onConflict = onConflict
        self.dryRun = dryRun
        self.remapIDs = remapIDs
        self.mappingFile = mappingFile
        self.encryptionKey = encryptionKey
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
    ///
    /// An encrypted export needs `options.encryptionKey`; each chunk of each file is authenticated as it
    /// streams through, and a failure (``SextantError/Code/corrupt``, naming file and chunk) ends the
    /// restore before the swap, like any other damage.
    /// - Throws: ``SextantError/Code/invalidArgument`` when the export is encrypted and no key (or the
    ///   wrong key) is given, or a key is given for an export that is not encrypted.
    @discardableResult
    public func restore(
        from directory: String, options: RestoreOptions = RestoreOptions(), progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) -> RestoreSummary {
        let io = core.io
        let manifest = try Self.loadExportManifest(io, directory, key: options.encryptionKey)
        try manifest.compression.checkAvailable()
        let config = manifest.collection
        let session = try LoadSession(
            db: self, target: options.into ?? config.name, options: options, dimension: config.dimension, metric: config.metric,
            index: config.index, payloadIndexes: config.payloadIndexes, records: manifest.records, what: "the export")
        defer { session.abandon() }
        var done = 0
        func report(_ phase: String) throws(SextantError) {
            do { try progress(ProgressEvent(phase: phase, records: done, totalRecords: manifest.records, bytes: 0)) } catch {
                throw SextantError(.cancelled, "the restore of '\(session.target)' was cancelled")
            }
        }
        if !options.dryRun && !session.merging, let staging = session.staging {
            // Nothing to reconcile with: write the hidden collection's segments directly.
            try Self.loadDirect(io, directory, manifest, session, key: options.encryptionKey, into: SegmentLoader(staging, context: directory)) { (n) throws(SextantError) in
                done = n
                try report("restore")
            }
            return try session.finish()
        }
        for (i, chunk) in manifest.chunks.enumerated() {
            // Errors name the export's files, not the decompressed copies in the work directory.
            let named = [
                (session.work + "/records-\(i).jsonl", directory + "/" + chunk.recordsFile.file),
                (session.work + "/vectors-\(i).npy", directory + "/" + (chunk.vectors?.file ?? "")),
            ]
            func renamed(_ e: SextantError) -> SextantError {
                var message = e.message
                for (work, export) in named { message = message.replacingOccurrences(of: work, with: export) }
                return message == e.message ? e : SextantError(e.code, message, cause: e)
            }
            do throws(SextantError) {
                let (vectors, records) = try Self.unpack(io, directory, manifest, chunk, i, key: options.encryptionKey, into: session.work)
                defer {
                    try? io.unlink(records)
                    if let vectors { try? io.unlink(vectors) }
                }
                if options.dryRun {
                    try session.count(try Self.ids(inRecords: records))
                    done += chunk.records
                    try report("verify")
                    continue
                }
                let source: ImportSource = vectors.map { .npy(vectors: $0, ids: nil, records: records) } ?? .jsonLines(path: records)
                let before = done
                do {
                    _ = try session.staging!.importRecords(from: source, batchSize: 10_000, transform: { try session.apply($0) }) { n in
                        done = before + n
                        try report("restore")
                    }
                } catch let e as SextantError {
                    throw e
                } catch {
                    throw SextantError(.cancelled, "the restore of '\(session.target)' was cancelled")
                }
            } catch {
                throw renamed(error)
            }
        }
        return try session.finish()
    }

    /// Copies a collection — from this database or another open one — into `target` of this database,
    /// streaming (no intermediate file), with the modes and conflict policies of a restore. The source is
    /// read from a point-in-time view and never changes; the destination is built hidden and swapped in.
    @discardableResult
    public func transfer(
        from source: VectorCollection, into target: String? = nil, options: RestoreOptions = RestoreOptions(),
        progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) -> RestoreSummary {
        let targetName = target ?? options.into ?? source.name
        if source.database === core && targetName == source.name {
            throw SextantError(.invalidArgument, "transfer needs a different destination than the source ('\(source.name)')")
        }
        let view = try source.readView()
        let total = view.segments.reduce(0) { $0 + $1.liveRows } + view.memtables.reduce(0) { $0 + $1.count - $1.deleted.setCount }
        let session = try LoadSession(
            db: self, target: targetName, options: options, dimension: source.dimension, metric: source.metric, index: source.index,
            payloadIndexes: source.payloadIndexes, records: total, what: "collection '\(source.name)'")
        defer { session.abandon() }
        var done = 0
        func report(_ phase: String) throws(SextantError) {
            do { try progress(ProgressEvent(phase: phase, records: done, totalRecords: total, bytes: 0)) } catch {
                throw SextantError(.cancelled, "the transfer into '\(targetName)' was cancelled")
            }
        }
        if !options.dryRun && !session.merging, let staging = session.staging {
            // Nothing to reconcile with: write the hidden collection's segments directly.
            let loader = SegmentLoader(staging, context: "collection '\(source.name)'")
            try source.forEachRecord(in: view) { (id, vector, metadata, document) throws(SextantError) in
                try loader.append(
                    session.mapID(id), vector: UnsafeBufferPointer(start: vector, count: source.dimension), metadata: metadata, document: document,
                    place: "collection '\(source.name)'")
                done += 1
                if done % 10_000 == 0 { try report("transfer") }
            }
            try loader.finish()
            session.noteAdded(done)
            try report("transfer")
            return try session.finish()
        }
        var batch: [Mutation] = []
        batch.reserveCapacity(1000)
        let staging = session.staging
        staging?.beginBulkLoad()
        defer { staging?.endBulkLoad() }
        func flushBatch() throws(SextantError) {
            if batch.isEmpty { return }
            if options.dryRun {
                try session.count(batch.map(\.id))
            } else {
                _ = try staging!.commit(.init(mutations: try session.apply(batch)))
            }
            done += batch.count
            batch.removeAll(keepingCapacity: true)
            try report(options.dryRun ? "verify" : "transfer")
        }
        try source.forEachRecord(in: view) { (id, vector, metadata, document) throws(SextantError) in
            batch.append(.upsert(id, vector: Array(UnsafeBufferPointer(start: vector, count: source.dimension)), metadata: Array(metadata), document: document.map { String(decoding: $0, as: UTF8.self) }))
            if batch.count == 1000 { try flushBatch() }
        }
        try flushBatch()
        return try session.finish()
    }

    /// A hidden collection holding the same records as `c` (hard links to its files, copies of its log).
    func copyForMerge(_ c: VectorCollection, work: String) throws(SextantError) -> VectorCollection {
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

    /// Reads and checks an export's manifest (`manifest.json`, or `manifest.json.enc` when encrypted).
    static func loadExportManifest(_ io: any FileIO, _ directory: String, key: EncryptionKey? = nil) throws(SextantError) -> ExportManifest {
        let name = io.exists(directory + "/" + ExportManifest.encryptedFileName) ? ExportManifest.encryptedFileName : ExportManifest.fileName
        let path = directory + "/" + name
        guard io.exists(path) else {
            throw SextantError(
                .notFound,
                io.isDirectory(directory)
                    ? "\(directory) is not a complete export: manifest.json is missing (an export that did not finish?)"
                    : "\(directory): no such export directory")
        }
        let (bytes, encrypted) = try EncryptedFile.read(io: io, path, key: key, context: name, what: "export")
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        let m: ExportManifest
        do { m = try dec.decode(ExportManifest.self, from: Data(bytes)) } catch let e as SextantError {
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
        // An encrypted manifest is authenticated, so what it says about encryption is true; a plain one
        // that claims encrypted files was not written by an export.
        guard encrypted == (m.encryption != nil) else {
            throw SextantError(.corrupt, "\(path): the manifest says the export is \(encrypted ? "not " : "")encrypted, but it is\(encrypted ? "" : " not")")
        }
        for c in m.chunks {
            for f in [c.vectors, c.recordsFile].compactMap({ $0 }) {
                let p = directory + "/" + f.file
                if encrypted && f.salt == nil { throw SextantError(.corrupt, "\(path): no encryption salt recorded for \(f.file)") }
                guard !f.file.contains("/"), io.exists(p) else { throw SextantError(.corrupt, "\(p): missing from the export") }
                let size = try fileSize(io, p)
                guard size == f.bytes else { throw SextantError(.corrupt, "\(p): \(size) bytes, the manifest says \(f.bytes)") }
            }
        }
        return m
    }

    /// Streams every chunk of an export into `loader`: one pass over each file, which is decompressed,
    /// checksummed and parsed as it is read (no temporary copies). A file whose checksum or size does not
    /// match the manifest fails the restore — reported as damage even when the damage first shows as bad
    /// JSON or a bad vector — before anything is published.
    static func loadDirect(
        _ io: any FileIO, _ directory: String, _ m: ExportManifest, _ session: LoadSession, key: EncryptionKey?, into loader: SegmentLoader,
        progress: (Int) throws(SextantError) -> Void
    ) throws(SextantError) {
        let d = m.collection.dimension
        let blockRows = max(1, (1 << 20) / (d * 4))
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: blockRows * d * 8, alignment: 64)
        defer { raw.deallocate() }
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * d)
        defer { floats.deallocate() }
        var done = 0
        for chunk in m.chunks {
            let recordsPath = directory + "/" + chunk.recordsFile.file
            let records = try ContentReader(
                io: io, path: recordsPath, compression: m.compression, decryption: key.map { ($0, chunk.recordsFile.file, chunk.recordsFile.salt) })
            let vectorsPath = chunk.vectors.map { directory + "/" + $0.file }
            let vectors = try chunk.vectors.map { (f) throws(SextantError) in
                try ContentReader(io: io, path: directory + "/" + f.file, compression: m.compression, decryption: key.map { ($0, f.file, f.salt) })
            }
            /// The real cause of a failure inside a chunk: a file that does not match the manifest.
            func checkFiles() throws(SextantError) {
                for (reader, info) in [(records, chunk.recordsFile), (vectors, chunk.vectors)] {
                    guard let reader, let info else { continue }
                    try reader.drain()
                    guard reader.count == info.contentBytes, reader.crc == info.crc32c else {
                        throw SextantError(.corrupt, "\(directory)/\(info.file): checksum mismatch (the file is damaged); nothing was restored")
                    }
                }
            }
            do throws(SextantError) {
                var header: NPYHeader?
                if let vectors, let vectorsPath {
                    let h = try readNPYHeader(vectors, path: vectorsPath)
                    guard h.rows == chunk.records, h.columns == d else {
                        throw SextantError(.corrupt, "\(vectorsPath): holds \(h.rows) × \(h.columns), the manifest says \(chunk.records) × \(d)")
                    }
                    header = h
                }
                var row = 0, inBlock = 0, nextInBlock = 0
                let reader = JSONLinesReader(name: recordsPath) { (buffer) throws(SextantError) in try records.read(into: buffer) }
                var failure: SextantError?
                try typed { try reader.forEachLine { line, lineNumber in
                    do throws(SextantError) {
                        guard row < chunk.records else {
                            throw SextantError(.corrupt, "\(recordsPath): line \(lineNumber): more records than the \(chunk.records) the manifest lists")
                        }
                        let r = try JSONLinesReader.parseRecordLineKeepingMetadataBytes(line, lineNumber: lineNumber)
                        guard let rawID = r.id else { throw SextantError(.parse, "\(recordsPath): line \(lineNumber): the record has no \"id\"") }
                        let id = session.mapID(rawID)
                        let vector: UnsafeBufferPointer<Float>
                        if let vectors, let header, let vectorsPath {
                            if r.vector != nil {
                                throw SextantError(.parse, "\(recordsPath): line \(lineNumber): a records file must not hold vectors (they come from \(vectorsPath))")
                            }
                            if nextInBlock == inBlock {
                                let want = min(blockRows, chunk.records - row)
                                let bytes = want * d * header.elementSize
                                guard try vectors.readFully(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<bytes])) == bytes else {
                                    throw SextantError(.corrupt, "\(vectorsPath): ends after row \(row) of \(chunk.records)")
                                }
                                header.convert(raw.baseAddress!, rows: want, into: floats)
                                (inBlock, nextInBlock) = (want, 0)
                            }
                            vector = UnsafeBufferPointer(start: floats + nextInBlock * d, count: d)
                            nextInBlock += 1
                        } else {
                            guard let v = r.vector else { throw SextantError(.parse, "\(recordsPath): line \(lineNumber): the record has no \"vector\"") }
                            guard v.count == d else {
                                throw SextantError(.dimensionMismatch, "\(recordsPath): line \(lineNumber): the vector has \(v.count) values; the export's dimension is \(d)")
                            }
                            floats.update(from: v, count: d)
                            vector = UnsafeBufferPointer(start: floats, count: d)
                        }
                        var document = r.document
                        // A bad vector of the npy layout is the .npy file's fault: name it and the row
                        // (counted from 0, as numpy does); everything else is the records file's line.
                        let vectorPlace = vectorsPath.map { "\($0): row \(row)" }
                        try (r.metadataJSON ?? []).withBytes { (meta) throws(SextantError) in
                            if document == nil {
                                try loader.append(
                                    id, vector: vector, metadata: meta, document: nil, place: "\(recordsPath): line \(lineNumber)", vectorPlace: vectorPlace)
                            } else {
                                try typed { try document!.withUTF8 { doc in
                                    try loader.append(
                                        id, vector: vector, metadata: meta, document: UnsafeRawBufferPointer(doc), place: "\(recordsPath): line \(lineNumber)",
                                        vectorPlace: vectorPlace)
                                } }
                            }
                        }
                        row += 1
                        done += 1
                        if done % 10_000 == 0 { try progress(done) }
                        return true
                    } catch {
                        // The record parser names the line, not the file: add it.
                        let named = error.message.hasPrefix(recordsPath) || vectorsPath.map { error.message.hasPrefix($0) } == true
                        failure = named ? error : SextantError(error.code, "\(recordsPath): \(error.message)")
                        return false
                    }
                } }
                if let failure { throw failure }
                guard row == chunk.records else {
                    throw SextantError(.corrupt, "\(recordsPath): \(row) records, the manifest says \(chunk.records)")
                }
                try checkFiles()
            } catch {
                if error.code != .cancelled { try checkFiles() }
                throw error
            }
        }
        try loader.finish()
        session.noteAdded(done)
        try progress(done)
    }

    /// Reads exactly the header of a `.npy` stream.
    static func readNPYHeader(_ reader: ContentReader, path: String) throws(SextantError) -> NPYHeader {
        let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: 12, alignment: 8)
        defer { prefix.deallocate() }
        let got = try reader.readFully(into: prefix)
        guard let length = NPYHeader.length(UnsafeRawBufferPointer(rebasing: prefix[0..<got])), length > got else {
            return try NPYHeader.parse(UnsafeRawBufferPointer(rebasing: prefix[0..<got]), path: path)
        }
        try NPYHeader.checkLength(length, path: path)
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
        defer { bytes.deallocate() }
        bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: prefix[0..<got]))
        let more = try reader.readFully(into: UnsafeMutableRawBufferPointer(rebasing: bytes[got...]))
        return try NPYHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[0..<(got + more)]), path: path)
    }

    /// Decompresses one chunk's files into `work`, checking sizes and checksums; returns their paths.
    static func unpack(
        _ io: any FileIO, _ directory: String, _ m: ExportManifest, _ chunk: ExportManifest.Chunk, _ i: Int, key: EncryptionKey?, into work: String
    ) throws(SextantError) -> (vectors: String?, records: String) {
        func one(_ f: ExportManifest.FileInfo, _ name: String) throws(SextantError) -> String {
            let out = work + "/" + name
            let (crc, bytes) = try decompress(
                io: io, directory + "/" + f.file, compression: m.compression, decryption: key.map { ($0, f.file, f.salt) }, to: out)
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
        var lineNumber = 0
        for i in text.indices where text[i] == 0x0A {
            lineNumber += 1
            if i > start {
                let line: JSONValue
                do throws(SextantError) {
                    line = try Array(text[start..<i]).withUnsafeBytes { (raw) in
                        Result { () throws(SextantError) in
                            var scanner = JSONScanner(raw, lineNumber: lineNumber)
                            return try scanner.parseDocument()
                        }
                    }.get()
                } catch {
                    throw SextantError(error.code, "\(path): \(error.message)")  // "line N, column C: …"
                }
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

/// One restore-like load: records flow into a hidden collection that then replaces (or, merging, extends)
/// the target in one manifest publish. Conflict policies, id remapping and the counts live here.
final class LoadSession {
    let db: Database
    let target: String
    let options: RestoreOptions
    let existing: VectorCollection?
    let merging: Bool
    let payloadIndexes: [PayloadIndexSpec]
    let work: String
    private(set) var staging: VectorCollection?
    private(set) var summary: RestoreSummary
    private var nextID: UInt64 = 0
    private var mapping: [(RecordID, RecordID)] = []
    private var published = false

    init(
        db: Database, target: String, options: RestoreOptions, dimension: Int, metric: Metric, index: IndexConfiguration,
        payloadIndexes: [PayloadIndexSpec], records: Int, what: String
    ) throws(SextantError) {
        self.db = db
        self.target = target
        self.options = options
        self.payloadIndexes = payloadIndexes
        try Database.validateName(target)
        existing = db.collectionNames().contains(target) ? try db.collection(target) : nil
        if options.mode == .new, existing != nil {
            throw SextantError(.alreadyExists, "collection '\(target)' already exists (use --mode override to replace it or --mode merge to add to it)")
        }
        merging = options.mode == .merge && existing != nil
        if merging, let c = existing, c.dimension != dimension || c.metric != metric {
            throw SextantError(.dimensionMismatch, "cannot merge: collection '\(target)' is \(c.dimension)-d \(c.metric), \(what) is \(dimension)-d \(metric)")
        }
        if options.remapIDs && options.mode == .override {
            throw SextantError(.invalidArgument, "remapping ids applies to merge and new restores")
        }
        summary = RestoreSummary(
            collection: target, mode: options.mode, records: records, added: 0, skipped: 0, overwritten: 0, conflicts: 0, dryRun: options.dryRun)
        work = db.path + "/restore-\(getpid())-\(hex16(UInt64.random(in: 1...UInt64.max))).tmp"
        try db.core.io.makeDirectory(work)
        if options.remapIDs, let c = existing {
            // New ids start after the largest integer id of the collection.
            for id in try c.scroll(limit: Int.max / 2, include: []).records.map(\.id) {
                if case .int(let v) = id { nextID = max(nextID, v &+ 1) }
            }
        }
        if options.dryRun { return }
        if merging, let c = existing {
            c.state.withLock { $0.writeBlock = "collection '\(target)' is being restored into (merge); writes resume when the restore ends" }
            staging = try db.copyForMerge(c, work: work)
        } else {
            staging = try db.createStagingCollection(dimension: dimension, metric: metric, index: index)
            // Before any record, so every segment's index file covers the fields from the start.
            for spec in payloadIndexes { try staging!.createPayloadIndex(spec.key, type: spec.type) }
        }
        staging?.state.withLock { $0.unlogged = true }
    }

    /// Counts what applying these ids would do (dry run).
    func count(_ ids: [RecordID]) throws(SextantError) {
        let considered = ids.filter { id in
            if case .int = id { return !options.remapIDs }  // remapped ids never conflict
            return true
        }
        guard merging, let c = existing else {
            summary.added += ids.count
            return
        }
        let found = Set(try c.get(considered, include: []).map(\.id))
        summary.conflicts += found.count
        switch options.onConflict {
        case .skip: summary.skipped += found.count
        case .overwrite: summary.overwritten += found.count
        case .fail: break
        }
        summary.added += ids.count - found.count
    }

    /// The id a record gets: a new one after the collection's largest when remapping integer ids (noted for
    /// the mapping file), else its own.
    func mapID(_ id: RecordID) -> RecordID {
        guard options.remapIDs, case .int = id else { return id }
        let new = RecordID.int(nextID)
        nextID &+= 1
        mapping.append((id, new))
        return new
    }

    /// Counts records a load added without ``apply(_:)`` (nothing to reconcile them with).
    func noteAdded(_ n: Int) { summary.added += n }

    /// Remaps ids and applies the conflict policy to one batch.
    func apply(_ input: [Mutation]) throws(SextantError) -> [Mutation] {
        var batch = input
        if options.remapIDs {
            for k in batch.indices {
                let new = mapID(batch[k].id)
                if new != batch[k].id { batch[k] = .upsert(new, vector: batch[k].vector, metadata: batch[k].metadata, document: batch[k].document) }
            }
        }
        guard merging, let staging else {
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
                throw SextantError(.alreadyExists, "record \(first.id.quotedForMessages) already exists in '\(target)' (--on-conflict fail); nothing was restored")
            }
            return batch
        }
    }

    /// Indexes, the id mapping, then the swap. Returns the counts.
    func finish() throws(SextantError) -> RestoreSummary {
        if options.mode == .override, let c = existing { summary.overwritten = try c.count() }
        guard !options.dryRun, let staging else { return summary }
        if let file = options.mappingFile, options.remapIDs {
            var out: [UInt8] = []
            for (from, to) in mapping {
                out.append(contentsOf: Array(#"{"from":"#.utf8))
                out.append(contentsOf: JSONWriter.write(from.jsonValue))
                out.append(contentsOf: Array(#","to":"#.utf8))
                out.append(contentsOf: JSONWriter.write(to.jsonValue))
                out.append(contentsOf: Array("}\n".utf8))
            }
            try db.core.io.writeFileAtomically(file, out)
        }
        try staging.flush()
        try db.swapIn(staging, as: target)
        published = true
        return summary
    }

    /// Undoes an unfinished load: drops the hidden collection, lets writes to the target resume.
    func abandon() {
        try? db.core.io.removeTree(work)
        if published { return }
        if let staging { try? db.dropCollection(staging.name) }
        if merging { existing?.state.withLock { $0.writeBlock = nil } }
    }
}
