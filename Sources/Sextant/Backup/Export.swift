// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Synchronization

/// The layout of an export directory.
public enum ExportFormat: String, Sendable, Hashable, Codable, CaseIterable {
    /// Vectors as float32 `.npy` chunks (numpy loads them directly), records (id, metadata, document) as
    /// JSON Lines beside them.
    case npy
    /// One self-contained JSON object per line: id, vector, metadata, document.
    case jsonl
}

/// What long operations report. `totalRecords` is known for exports and restores from exports.
public struct ProgressEvent: Sendable, Hashable {
    public var phase: String
    public var records: Int
    public var totalRecords: Int?
    public var bytes: Int
}

/// Options of ``VectorCollection/export(to:options:progress:)``.
public struct ExportOptions: Sendable {
    public var format: ExportFormat
    public var compression: Compression
    /// Records per chunk file; memory stays bounded by about one chunk's vectors.
    public var chunkRecords: Int
    /// Export only the records passing this filter.
    public var filter: Filter?
    /// Encrypt and authenticate every file of the export — `manifest.json` included, so even listing
    /// the export needs the key — with this key (AES-256-GCM in 64 KiB chunks, compressed first). The
    /// default, nil, writes plain files.
    public var encryptionKey: EncryptionKey?

    public init(
        format: ExportFormat = .npy, compression: Compression = .none, chunkRecords: Int = 100_000, filter: Filter? = nil,
        encryptionKey: EncryptionKey? = nil
    ) {
        self.format = format
        self.compression = compression
        self.chunkRecords = chunkRecords
        self.filter = filter
        self.encryptionKey = encryptionKey
    }
}

/// What an export wrote.
public struct ExportSummary: Sendable, Hashable {
    public var directory: String
    public var records: Int
    public var files: Int
    /// Bytes of the files written (compressed sizes).
    public var bytes: Int
    /// The ``EncryptionKey/id`` of the key the export is encrypted with; nil when it is not encrypted.
    public var keyID: String?
}

/// `manifest.json` of an export directory (see FileFormat.md, "Export directory").
struct ExportManifest: Codable {
    static let fileName = "manifest.json"
    /// The manifest's name in an encrypted export.
    static let encryptedFileName = "manifest.json.enc"
    static let formatName = "sextant-export"
    static let formatVersion = 1

    struct CollectionConfig: Codable {
        var name: String
        var dimension: Int
        var metric: Metric
        var index: IndexConfiguration
        var payloadIndexes: [PayloadIndexSpec]
    }
    struct FileInfo: Codable {
        var file: String
        /// Size of the file on disk.
        var bytes: Int
        /// Size and CRC-32C of the content (after decompression).
        var contentBytes: Int
        var crc32c: UInt32
        /// Encrypted exports: the salt of the file's encryption header, which binds the file to this
        /// (authenticated) manifest, so a file from another export cannot be put in its place.
        var salt: String?
    }
    struct Chunk: Codable {
        var records: Int
        var vectors: FileInfo?
        var recordsFile: FileInfo
    }

    var format: String
    var version: Int
    var layout: ExportFormat
    var compression: Compression
    var collection: CollectionConfig
    var records: Int
    var createdAt: Double
    var chunks: [Chunk]
    /// Present when the export is encrypted (then this manifest is itself encrypted).
    var encryption: EncryptionInfo?
}

extension VectorCollection {
    /// Writes the collection (or the records passing `options.filter`) to a new directory in a portable,
    /// documented format: `manifest.json` (format version, collection configuration, counts, per-file
    /// sizes and CRC-32C checksums) and chunk files. Streams in chunks: memory stays bounded whatever the
    /// size. The directory appears complete or not at all: files go to `<directory>.partial` first, the
    /// manifest last, then one rename; an export that fails or is cancelled (throw from `progress`)
    /// removes its partial directory.
    /// - Throws: ``SextantError/Code/alreadyExists`` when `directory` exists and is not empty.
    @discardableResult
    public func export(
        to directory: String, options: ExportOptions = ExportOptions(), progress: (ProgressEvent) throws -> Void = { _ in }
    ) throws(SextantError) -> ExportSummary {
        guard options.chunkRecords > 0 else { throw SextantError(.invalidArgument, "chunk size must be positive, not \(options.chunkRecords)") }
        try options.compression.checkAvailable()
        let directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        if io.exists(directory) {
            guard io.isDirectory(directory), try io.listDirectory(directory).isEmpty else {
                throw SextantError(.alreadyExists, "\(directory) already exists and is not an empty directory")
            }
        }
        let partial = directory + ".partial"
        try io.removeTree(partial)
        try io.makeDirectory(partial)
        var ok = false
        defer { if !ok { try? io.removeTree(partial) } }

        let compiled = try options.filter.flatMap { (f) throws(SextantError) in f.isEmpty ? nil : try CompiledFilter(f, tokenizer: index.tokenizer) }
        let view = try readView()
        let masks = try compiled.map { (f) throws(SextantError) in try self.masks(f, view) }
        let total = masks?.total ?? (view.segments.reduce(0) { $0 + $1.liveRows } + view.memtables.reduce(0) { $0 + $1.count - $1.deleted.setCount })

        var chunks: [ExportManifest.Chunk] = []
        var done = 0
        var bytesWritten = 0
        var chunk: ChunkWriter?
        let d = dimension
        func report() throws(SextantError) {
            do { try progress(ProgressEvent(phase: "export", records: done, totalRecords: total, bytes: bytesWritten)) } catch {
                throw SextantError(.cancelled, "the export of '\(name)' was cancelled")
            }
        }
        func emit(_ id: RecordID, _ vector: UnsafePointer<Float>, _ metadata: UnsafeRawBufferPointer, _ document: UnsafeRawBufferPointer?) throws(SextantError) {
            if chunk == nil {
                chunk = try ChunkWriter(
                    io: io, directory: partial, index: chunks.count, rows: min(options.chunkRecords, total - done), dimension: d,
                    format: options.format, compression: options.compression, key: options.encryptionKey)
            }
            try chunk!.add(id, vector, metadata, document)
            done += 1
            if chunk!.isFull {
                let c = try chunk!.finish()
                bytesWritten += (c.vectors?.bytes ?? 0) + c.recordsFile.bytes
                chunks.append(c)
                chunk = nil
                try report()
            }
        }
        try forEachRecord(in: view, masks: masks) { (id, vector, metadata, document) throws(SextantError) in
            try emit(id, vector, metadata, document)
        }
        if let c = chunk {
            let finished = try c.finish()
            bytesWritten += (finished.vectors?.bytes ?? 0) + finished.recordsFile.bytes
            chunks.append(finished)
        }
        guard done == total else { throw SextantError(.io, "the export of '\(name)' found \(done) records, expected \(total)") }
        try report()

        let manifest = ExportManifest(
            format: ExportManifest.formatName, version: ExportManifest.formatVersion, layout: options.format,
            compression: options.compression,
            collection: .init(name: name, dimension: dimension, metric: metric, index: index, payloadIndexes: payloadIndexes),
            records: done, createdAt: Date().timeIntervalSince1970, chunks: chunks, encryption: options.encryptionKey.map(EncryptionInfo.init))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        enc.keyEncodingStrategy = .convertToSnakeCase
        let json: Data
        do { json = try enc.encode(manifest) } catch { throw SextantError(.io, "could not encode the export manifest: \(error)") }
        if let key = options.encryptionKey {
            try EncryptedFile.write(io: io, partial + "/" + ExportManifest.encryptedFileName, Array(json), key: key, context: ExportManifest.encryptedFileName)
        } else {
            try io.writeFileAtomically(partial + "/" + ExportManifest.fileName, Array(json))
        }
        let manifestBytes = try fileSize(io, partial + "/" + (options.encryptionKey == nil ? ExportManifest.fileName : ExportManifest.encryptedFileName))
        try io.syncDirectory(partial)
        if io.exists(directory) { try io.removeDirectory(directory) }  // checked empty above
        try io.rename(partial, to: directory)
        try io.syncDirectory(parentDirectory(of: directory))
        ok = true
        return ExportSummary(
            directory: directory, records: done, files: chunks.reduce(1) { $0 + ($1.vectors == nil ? 1 : 2) }, bytes: bytesWritten + manifestBytes,
            keyID: options.encryptionKey?.id)
    }
}

extension VectorCollection {
    /// Calls `body` with every live record of `view` (those in `masks`, when given): id, vector, raw
    /// metadata JSON (empty: none), document bytes. Segment rows come straight from the mapping.
    package func forEachRecord(
        in view: ReadView, masks: FilterMasks? = nil,
        _ body: (RecordID, UnsafePointer<Float>, UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws(SextantError) -> Void
    ) throws(SextantError) {
        let d = dimension
        for (i, sealed) in view.segments.enumerated() {
            let segment = sealed.segment
            try segment.verifyAll(releasingPages: true)
            let base = try segment.vectors()
            // Every 16 MiB of vectors, give back the resident pages already streamed (RSS stays flat).
            let step = max(1, (16 << 20) / (d * 4))
            var released = 0
            for row in 0..<segment.rowCount {
                if let mask = masks?.segments[i] { if !mask.contains(row) { continue } } else if sealed.deleted.contains(row) { continue }
                try body(try segment.recordID(row), base + row * d, try segment.metadata(row), try segment.document(row))
                if row - released >= step {
                    segment.releasePages(UnsafeRawBufferPointer(start: base + released * d, count: (row - released) * d * 4))
                    for kind in [SectionKind.metadata, .documents] { if let b = try? segment.section(kind) { segment.releasePages(b) } }
                    released = row
                }
            }
            segment.releasePages(UnsafeRawBufferPointer(start: base + released * d, count: (segment.rowCount - released) * d * 4))
        }
        for (j, (table, count, deleted)) in view.memtables.enumerated() {
            // Copies of the arrays (copy-on-write: no bytes move), read outside the lock.
            let (ids, metadata, documents) = state.withLock { _ in (table.ids, table.metadata, table.documents) }
            for row in 0..<count {
                if let mask = masks?.memtables[j] { if !mask.contains(row) { continue } } else if deleted.contains(row) { continue }
                let doc = documents[row].map { Array($0.utf8) }
                try metadata[row].withBytes { (m) throws(SextantError) in
                    if let doc {
                        try doc.withBytes { (u) throws(SextantError) in try body(ids[row], table.vectors + row * d, m, u) }
                    } else {
                        try body(ids[row], table.vectors + row * d, m, nil)
                    }
                }
            }
        }
    }
}

/// Writes one chunk: `vectors-NNNNNN.npy` + `records-NNNNNN.jsonl` (npy layout) or `records-NNNNNN.jsonl`
/// with vectors inline (jsonl layout), each through the compressor.
private final class ChunkWriter {
    let rows: Int
    let dimension: Int
    let format: ExportFormat
    let vectors: ContentWriter?
    let records: ContentWriter
    let vectorsName: String
    let recordsName: String
    var count = 0
    var line: [UInt8] = []

    /// - Parameter key: encrypts both files; each file's name is its context (see ``EncryptedContainer``).
    init(
        io: any FileIO, directory: String, index: Int, rows: Int, dimension: Int, format: ExportFormat, compression: Compression,
        key: EncryptionKey?
    ) throws(SextantError) {
        self.rows = rows
        self.dimension = dimension
        self.format = format
        let n = String(format: "%06d", index)
        // Encrypted files say so in their names (numpy cannot read them as they are).
        let encrypted = key == nil ? "" : ".enc"
        let vectorsName = "vectors-\(n).npy" + compression.suffix + encrypted
        let recordsName = "records-\(n).jsonl" + compression.suffix + encrypted
        self.vectorsName = vectorsName
        self.recordsName = recordsName
        if format == .npy {
            let v = try ContentWriter(
                io: io, path: directory + "/" + vectorsName, compression: compression, encryption: key.map { ($0, vectorsName) })
            try v.write(NPYFile.float32Header(rows: rows, columns: dimension))
            vectors = v
        } else {
            vectors = nil
        }
        records = try ContentWriter(
            io: io, path: directory + "/" + recordsName, compression: compression, encryption: key.map { ($0, recordsName) })
    }

    var isFull: Bool { count == rows }

    func add(_ id: RecordID, _ vector: UnsafePointer<Float>, _ metadata: UnsafeRawBufferPointer, _ document: UnsafeRawBufferPointer?) throws(SextantError) {
        line.removeAll(keepingCapacity: true)
        JSONWriter.appendASCII("{\"id\":", to: &line)
        switch id {
        case .int(let v): line.append(contentsOf: String(v).utf8)
        case .string(let s): JSONWriter.write(.string(s), into: &line)
        }
        if let vectors {
            try vectors.write(UnsafeRawBufferPointer(start: vector, count: dimension * 4))
        } else {
            JSONWriter.appendASCII(",\"vector\":", to: &line)
            JSONWriter.writeFloats(UnsafeBufferPointer(start: vector, count: dimension), into: &line)
        }
        if !metadata.isEmpty {
            JSONWriter.appendASCII(",\"metadata\":", to: &line)
            if metadata.contains(0x0A) || metadata.contains(0x0D) {
                // Stored metadata is compact JSON; if a line break ever got in, re-serialize to keep one record per line.
                JSONWriter.write(try JSONParser.parse(metadata), into: &line)
            } else {
                line.append(contentsOf: metadata)
            }
        }
        if let document {
            JSONWriter.appendASCII(",\"document\":", to: &line)
            JSONWriter.write(.string(String(decoding: document, as: UTF8.self)), into: &line)
        }
        JSONWriter.appendASCII("}\n", to: &line)
        try records.write(line)
        count += 1
    }

    func finish() throws(SextantError) -> ExportManifest.Chunk {
        var v: ExportManifest.FileInfo?
        if let vectors {
            try vectors.finish()
            v = .init(
                file: vectorsName, bytes: try fileSize(vectors.io, vectors.path), contentBytes: vectors.count, crc32c: vectors.crc,
                salt: vectors.encryptionSalt)
        }
        try records.finish()
        let r = ExportManifest.FileInfo(
            file: recordsName, bytes: try fileSize(records.io, records.path), contentBytes: records.count, crc32c: records.crc,
            salt: records.encryptionSalt)
        return .init(records: count, vectors: v, recordsFile: r)
    }
}

func fileSize(_ io: any FileIO, _ path: String) throws(SextantError) -> Int {
    let fd = try io.open(path, flags: O_RDONLY, mode: 0)
    defer { io.close(fd) }
    return Int(try io.size(fd, path: path))
}

extension NPYFile {
    /// The header of a little-endian float32 C-order `[rows, columns]` array (format 1.0, padded to 64 bytes).
    static func float32Header(rows: Int, columns: Int) -> [UInt8] {
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }".utf8)
        let unpadded = 10 + dict.count + 1
        dict.append(contentsOf: repeatElement(0x20, count: (64 - unpadded % 64) % 64))
        dict.append(0x0A)
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        out.append(UInt8(dict.count & 0xFF))
        out.append(UInt8(dict.count >> 8))
        return out + dict
    }
}
