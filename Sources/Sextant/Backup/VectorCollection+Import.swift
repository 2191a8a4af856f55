// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// Where an import's records come from.
public enum ImportSource: Sendable {
    /// JSON Lines: one `{"id": …, "vector": […], "metadata": {…}, "document": "…"}` per line.
    case jsonLines(path: String)
    /// A float32 (or float16 / float64) `[n, d]` NumPy array. Ids come from `ids` (one per line), else from
    /// the `id` of each `records` line, else 0…n−1. `records` is JSON Lines in the same order, with
    /// `metadata` and `document` (and optionally `id`), `vector` absent.
    case npy(vectors: String, ids: String?, records: String?)
}

extension VectorCollection {
    /// Imports records in batches. Each batch is one atomic, durable write; `onCommit` is called after
    /// each with the number of records committed so far (throw from it to stop).
    ///
    /// Parsing runs on a second thread, one batch ahead of the writes, so the two overlap. Memory stays
    /// bounded by a few batches whatever the input size.
    /// - Parameter batchSize: records per batch, 1…``Limits/maxImportBatchRecords``; a batch must also
    ///   encode to at most ``Limits/maxBatchBytes`` (1 GiB), which is checked as it is parsed.
    /// - Returns: the number of records imported.
    /// - Throws: ``SextantError/Code/parse`` naming the file and line of malformed input; validation errors
    ///   (dimension, NaN, …) naming the record; ``SextantError/Code/invalidArgument`` for a batch size out
    ///   of range or a batch over 1 GiB. Batches before the bad one stay committed; nothing of the failing
    ///   batch is applied.
    @discardableResult
    public func importRecords(
        from source: ImportSource, batchSize: Int = 1000, onCommit: (Int) throws -> Void = { _ in }
    ) throws -> Int {
        try importRecords(from: source, batchSize: batchSize, transform: nil, onCommit: onCommit)
    }

    /// ``importRecords(from:batchSize:onCommit:)`` with `transform` applied to each parsed batch before it
    /// is committed (restore uses it for conflict policies and id remapping). `onCommit` gets the number of
    /// records read so far.
    package func importRecords(
        from source: ImportSource, batchSize: Int, transform: (([Mutation]) throws -> [Mutation])?, onCommit: (Int) throws -> Void
    ) throws -> Int {
        guard (1...Limits.maxImportBatchRecords).contains(batchSize) else {
            throw SextantError(.invalidArgument, "the batch size must be between 1 and \(Limits.maxImportBatchRecords) records, not \(batchSize)")
        }
        beginBulkLoad()
        defer { endBulkLoad() }
        let queue = BoundedQueue<Result<[Mutation], SextantError>>(capacity: 2)
        let producer = Thread { [self] in
            do throws(SextantError) {
                switch source {
                case .jsonLines(let path):
                    try produceJSONLines(path, batchSize: batchSize, queue)
                case .npy(let vectors, let ids, let records):
                    try produceNPY(vectors, ids, records, batchSize: batchSize, queue)
                }
            } catch {
                _ = queue.put(.failure(error))
            }
            queue.finish()
        }
        producer.stackSize = 8 << 20
        producer.start()
        defer { queue.cancel() }  // unblocks the producer if we stop early
        var committed = 0
        while let item = queue.take() {
            let parsed = try item.get()
            let mutations = try transform?(parsed) ?? parsed
            _ = try commit(.init(mutations: mutations))
            committed += parsed.count
            try onCommit(committed)
        }
        return committed
    }

    private func produceJSONLines(_ path: String, batchSize: Int, _ queue: BoundedQueue<Result<[Mutation], SextantError>>) throws(SextantError) {
        let reader = try JSONLinesReader(path: path)
        var batch: [Mutation] = []
        batch.reserveCapacity(min(batchSize, 1 << 12))
        var bytes = BatchBytes(batchSize: batchSize)
        var failure: SextantError?
        var stopped = false
        try typed { try reader.forEachLine { line, lineNumber in
            do throws(SextantError) {
                let r = try JSONLinesReader.parseRecordLineKeepingMetadataBytes(line, lineNumber: lineNumber)
                guard let id = r.id else { throw SextantError(.parse, "\(path): line \(lineNumber): the record has no \"id\"") }
                guard let vector = r.vector else { throw SextantError(.parse, "\(path): line \(lineNumber): the record has no \"vector\"") }
                let m = try mutation(id, vector, r.metadataJSON, r.document, where: "\(path): line \(lineNumber)")
                try bytes.add(m, records: batch.count + 1, where: "\(path): line \(lineNumber)")
                batch.append(m)
            } catch {
                failure = error.message.hasPrefix(path) ? error : SextantError(error.code, "\(path): \(error.message)")
                return false
            }
            if batch.count == batchSize {
                if !queue.put(.success(batch)) { stopped = true; return false }
                batch.removeAll(keepingCapacity: true)
                bytes.reset()
            }
            return true
        } }
        if let failure { throw failure }
        if !stopped && !batch.isEmpty { _ = queue.put(.success(batch)) }
    }

    private func produceNPY(
        _ vectorsPath: String, _ idsPath: String?, _ recordsPath: String?, batchSize: Int,
        _ queue: BoundedQueue<Result<[Mutation], SextantError>>
    ) throws(SextantError) {
        let npy = try NPYFile(path: vectorsPath)
        guard npy.columns == dimension else {
            throw SextantError(.dimensionMismatch, "\(vectorsPath): rows have \(npy.columns) values; collection '\(name)' has dimension \(dimension)")
        }
        var ids: [RecordID]? = nil
        if let idsPath {
            let text: String
            do { text = try String(contentsOfFile: idsPath, encoding: .utf8) } catch {
                throw SextantError(.notFound, "\(idsPath): cannot read the ids file (\(error.localizedDescription))")
            }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
            if lines.last == "" { lines.removeLast() }
            guard lines.count == npy.rows else {
                throw SextantError(.invalidArgument, "\(idsPath): \(lines.count) ids for \(npy.rows) vectors in \(vectorsPath)")
            }
            ids = []
            ids!.reserveCapacity(lines.count)
            for (i, line) in lines.enumerated() {
                do { ids!.append(try RecordID(parsing: line)) } catch {
                    throw SextantError(error.code, "\(idsPath): line \(i + 1): \(error.message)")
                }
            }
        }
        var batch: [Mutation] = []
        batch.reserveCapacity(min(batchSize, 1 << 12))
        var bytes = BatchBytes(batchSize: batchSize)
        var row = 0
        func emit(_ m: Mutation) throws(SextantError) -> Bool {
            try bytes.add(m, records: batch.count + 1, where: "\(vectorsPath): row \(row)")
            batch.append(m)
            row += 1
            if batch.count == batchSize {
                if !queue.put(.success(batch)) { return false }
                batch.removeAll(keepingCapacity: true)
                bytes.reset()
                npy.releaseRows(before: row)
            }
            return true
        }
        if let recordsPath {
            let reader = try JSONLinesReader(path: recordsPath)
            var failure: SextantError?
            try typed { try reader.forEachLine { line, lineNumber in
                do throws(SextantError) {
                    guard row < npy.rows else {
                        throw SextantError(.invalidArgument, "\(recordsPath): line \(lineNumber): more records than the \(npy.rows) vectors in \(vectorsPath)")
                    }
                    let r = try JSONLinesReader.parseRecordLineKeepingMetadataBytes(line, lineNumber: lineNumber)
                    if r.vector != nil {
                        throw SextantError(.parse, "\(recordsPath): line \(lineNumber): a records file must not hold vectors (they come from \(vectorsPath))")
                    }
                    let id = ids?[row] ?? r.id ?? .int(UInt64(row))
                    return try emit(try mutation(id, npy.row(row), r.metadataJSON, r.document, where: "\(vectorsPath): row \(row)"))
                } catch {
                    failure = error.message.hasPrefix(recordsPath) || error.message.hasPrefix(vectorsPath) ? error : SextantError(error.code, "\(recordsPath): \(error.message)")
                    return false
                }
            } }
            if let failure { throw failure }
            if row < npy.rows && !queue.isCancelled {
                throw SextantError(.invalidArgument, "\(recordsPath): \(row) records for \(npy.rows) vectors in \(vectorsPath)")
            }
        } else {
            while row < npy.rows {
                if !(try emit(try mutation(ids?[row] ?? .int(UInt64(row)), npy.row(row), nil, nil, where: "\(vectorsPath): row \(row)"))) { return }
            }
        }
        if !batch.isEmpty { _ = queue.put(.success(batch)) }
    }

    /// `metadata` is validated JSON text (empty or nil: none).
    private func mutation(_ id: RecordID, _ vector: [Float], _ metadata: [UInt8]?, _ document: String?, where place: String) throws(SextantError) -> Mutation {
        do {
            try validate(id, vector: vector, index: 0)
        } catch {
            throw SextantError(error.code, place + ": " + error.message.replacingOccurrences(of: "record 0 ", with: "record "))
        }
        return .upsert(id, vector: vector, metadata: metadata ?? [], document: document)
    }
}

/// The running encoded size of the batch an import is filling, so that a batch over
/// ``Limits/maxBatchBytes`` fails as soon as it gets there — before the rest of it is read into memory, and
/// before anything of it is written.
struct BatchBytes {
    let batchSize: Int
    private var total = WALRecord.headerSize + 4

    init(batchSize: Int) { self.batchSize = batchSize }

    mutating func add(_ m: Mutation, records: Int, where place: @autoclosure () -> String) throws(SextantError) {
        total += Limits.encodedBytes(m)
        if total > Limits.maxBatchBytes {
            let e = Limits.batchTooLarge(
                bytes: total, records: records, advice: "import with a smaller batch size (--batch; it is \(batchSize) records)")
            throw SextantError(e.code, "\(place()): \(e.message)")
        }
    }

    mutating func reset() { total = WALRecord.headerSize + 4 }
}

/// A blocking FIFO with a capacity, for the import pipeline.
final class BoundedQueue<Element>: @unchecked Sendable {  // guarded by `condition`
    private let condition = NSCondition()
    private var items: [Element] = []
    private var finished = false
    private(set) var isCancelled = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Blocks while full. Returns false if the consumer cancelled.
    func put(_ item: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !isCancelled { condition.wait() }
        if isCancelled { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        isCancelled = true
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until an item is available; nil when the producer finished.
    func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !finished { condition.wait() }
        if items.isEmpty { return nil }
        let item = items.removeFirst()
        condition.broadcast()
        return item
    }
}

/// Runs an untyped-throwing body, passing Sextant errors through and wrapping anything else.
func typed<R>(_ body: () throws -> R) throws(SextantError) -> R {
    do { return try body() } catch let e as SextantError { throw e } catch {
        throw SextantError(.io, "\(error)", cause: error)
    }
}
