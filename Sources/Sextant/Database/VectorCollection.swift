// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels
import Dispatch
import Foundation
import Synchronization

/// A sealed segment and its deletion marks.
package struct SealedSegment: Sendable {
    package var segment: Segment
    package var deleted: Bitmap
    /// The segment's HNSW graph, once built (nil: searched exactly).
    package var graph: HNSWGraph? = nil
    package var graphFile: MappedGraphFile? = nil
    /// int8 codes for traversal, when the collection quantizes (published together with the graph).
    package var codes: QuantizedVectors? = nil
    /// The persisted deletion generation (0 = none) and how many marks it holds. Marks are only ever
    /// added, so `deleted.setCount != persistedMarks` means new marks are not yet in a deletion file.
    package var generation: UInt64
    package var persistedMarks: Int
    /// The segment's payload index file (documents' postings and indexed fields), once built.
    package var payload: PayloadIndexReader? = nil
    package var payloadGeneration: UInt64 = 0
    package var liveRows: Int { segment.rowCount - deleted.setCount }
}

/// The immutable picture a query works on: sealed segments with their deletion marks, and the
/// memtables with the row count and marks at the moment the view was taken.
package struct ReadView: Sendable {
    package var segments: [SealedSegment]
    package var memtables: [(table: Memtable, count: Int, deleted: Bitmap)]
}

/// A named set of records with a fixed dimension and metric.
///
/// Thread-safe: any number of threads may search and read while others write. Writes are serialized
/// per collection and share fsyncs (group commit); flushes and compactions run in the background.
public final class VectorCollection: @unchecked Sendable {  // mutable state lives in `state` (a Locked)
    public let name: String
    public let dimension: Int
    public let metric: Metric
    /// How sealed segments are indexed.
    public let index: IndexConfiguration
    package let id: UInt64
    package let directory: String
    package let database: DatabaseCore
    package var io: any FileIO { database.io }
    private var configuration: Configuration { database.configuration }
    package var databaseConfiguration: Configuration { database.configuration }

    package struct State {
        var sealed: [SealedSegment]
        var active: Memtable
        var frozen: [Memtable]  // oldest first
        /// The log file batches are appended to; nil until the first write after an open or a freeze, so an
        /// open that only reads creates (and fsyncs) nothing.
        var wal: WALWriter?
        /// The number the next log file gets.
        var nextWALNumber: UInt64
        var nextSeq: UInt64
        var nextSegmentID: UInt64
        var nextDeletionGeneration: UInt64
        var closed = false
        var optimizerError: SextantError?
        /// Consecutive failed background passes, when the next is due, and the free bytes it waits for.
        var backgroundFailures = 0
        var backgroundRetryAt: Date?
        var backgroundNeedsBytes: Int?
        var optimizerScheduled = false
        var indexingScheduled = false
        /// Segments a running merge is replacing: building their graphs would be wasted work.
        var merging: Set<UInt64> = []
        /// The segment whose graph is being built, if any.
        var building: UInt64?
        /// The last graph build failure (the segment stays searchable exactly).
        var indexingError: SextantError?
        /// Imports running now. Segments flushed meanwhile are `deferred`: not indexed until the last import
        /// ends and merges them into segments of up to `maxSegmentBytes`, so a bulk load builds one large
        /// graph instead of many small ones that a merge would throw away (and searches visit one graph).
        var bulkLoads = 0
        var deferred: Set<UInt64> = []
        /// The payload fields indexed in every segment's index file.
        var payloadSpecs: [PayloadIndexSpec] = []
        /// Why writes are refused for now (a restore merging into this collection), or nil.
        var writeBlock: String?
        /// Batches skip the log: a restore's hidden collection, which is flushed before it is published and
        /// simply dropped if the process dies first, so logging its records would only write them twice.
        var unlogged = false
        /// Opened read-only (``Configuration/readOnly``, or damaged): nothing on disk is changed.
        var readOnly = false
        /// The damage a collection opened with ``Configuration/readDamagedCollections`` was read up to.
        var damage: SextantError?
    }
    package let state: Locked<State>
    private let commits = CommitQueue<Mutation.Batch, Int>()
    package let optimizer: DispatchQueue
    /// Builds graphs for sealed segments, off the optimizer so long builds do not delay flushes.
    package let indexer: DispatchQueue
    private let optimizerDone = NSCondition()
    private let memtableCapacity: Int
    private static let maxFrozen = 2

    // MARK: Opening

    /// Opens (recovers) a collection: maps its segments, loads deletion files, replays the log after the
    /// checkpoint, cuts a torn tail, removes files the manifest does not name.
    package init(database: DatabaseCore, entry: Manifest.CollectionEntry) throws(SextantError) {
        self.database = database
        self.name = entry.name
        self.dimension = entry.dimension
        self.metric = entry.metric
        self.index = entry.index ?? IndexConfiguration()
        self.id = entry.id
        self.directory = database.collectionDirectory(entry.id)
        self.optimizer = DispatchQueue(label: "sextant.optimizer.\(entry.name)")
        self.indexer = DispatchQueue(label: "sextant.indexer.\(entry.name)")
        let io = database.io
        let config = database.configuration
        let capacity = max(256, config.memtableBytes / max(1, entry.dimension * 4))
        memtableCapacity = capacity

        let readOnly = config.readOnly
        // Damage that `readDamagedCollections` lets the collection open despite (read-only, up to the damage).
        var damage: SextantError?
        func tolerate(_ error: SextantError) throws(SextantError) {
            guard config.readDamagedCollections, error.code == .corrupt || error.code == .notFound else { throw error }
            if damage == nil { damage = error }
        }

        var sealed: [SealedSegment] = []
        for s in entry.segments {
            let path = directory + "/" + SegmentFile.name(s.id)
            let segment: Segment
            var deleted: Bitmap
            do throws(SextantError) {
                segment = try Segment(io: io, path: path, expectedID: s.id)
                guard segment.rowCount == s.rows, segment.dimension == entry.dimension, segment.metric == entry.metric else {
                    throw SextantError(.corrupt, "\(path): holds \(segment.rowCount) rows of dimension \(segment.dimension) (\(segment.metric)); the manifest says \(s.rows) of \(entry.dimension) (\(entry.metric))")
                }
                if segment.maxSeq > entry.checkpointSeq {
                    throw SextantError(.corrupt, "\(path): holds batches up to sequence \(segment.maxSeq), past the manifest's checkpoint \(entry.checkpointSeq)")
                }
                if config.verifyChecksumsOnOpen {
                    try segment.verifyAll()
                } else {
                    // The lookup structures are small and used by every write; check them now.
                    _ = try segment.section(.keys)
                    _ = try segment.section(.keyOrder)
                    _ = try segment.section(.bloom)
                }
                deleted = Bitmap(count: segment.rowCount)
                if s.deletionGeneration != 0 {
                    let dpath = directory + "/" + SegmentFile.deletionName(s.id, generation: s.deletionGeneration)
                    deleted = try DeletionFile.decode(try io.readFile(dpath), path: dpath, segmentID: s.id, rowCount: segment.rowCount)
                }
            } catch {
                try tolerate(error)
                continue
            }
            var sealedSegment = SealedSegment(segment: segment, deleted: deleted, generation: s.deletionGeneration, persistedMarks: deleted.setCount)
            if s.graph == true {
                // A graph is derived data: one that does not load is rebuilt, not a reason to fail the collection.
                let gpath = directory + "/" + HNSWFile.name(s.id)
                if let (graph, file) = try? HNSWFile.load(io: io, path: gpath, segmentID: s.id, rowCount: segment.rowCount) {
                    // Graph and codes are one unit: if the codes are wanted and do not load, rebuild both.
                    let codes = s.quantized == true
                        ? try? QuantizedVectors(io: io, path: directory + "/" + QuantizedVectors.name(s.id), segmentID: s.id,
                                                count: segment.rowCount, dimension: entry.dimension)
                        : nil
                    if (entry.index ?? IndexConfiguration()).quantization == Quantization.none || codes != nil {
                        sealedSegment.graph = graph
                        sealedSegment.graphFile = file
                        sealedSegment.codes = codes
                    }
                }
            }
            if let g = s.payload {
                // Derived data too: an index file that does not load is rebuilt in the background.
                let ppath = directory + "/" + PayloadIndexFile.name(s.id, generation: g)
                if let reader = try? PayloadIndexReader(io: io, path: ppath, segmentID: s.id, rowCount: segment.rowCount) {
                    sealedSegment.payload = reader
                    sealedSegment.payloadGeneration = g
                }
            }
            sealed.append(sealedSegment)
        }

        // Replay the log.
        let walDir = directory + "/wal"
        if !readOnly { try io.makeDirectory(walDir) }
        let walFiles = io.exists(walDir) ? try io.listDirectory(walDir).compactMap { WALFile.number(fromName: $0) }.sorted() : []
        let live = walFiles.filter { $0 >= entry.firstLiveWALFile }
        var replay = State(
            sealed: sealed, active: Memtable(dimension: entry.dimension, capacity: capacity), frozen: [],
            // Never below firstLiveWALFile: recovery ignores files numbered below it.
            wal: nil, nextWALNumber: max((walFiles.last ?? 0) + 1, entry.firstLiveWALFile),
            nextSeq: entry.checkpointSeq + 1, nextSegmentID: entry.nextSegmentID,
            nextDeletionGeneration: entry.nextDeletionGeneration)
        // Files below firstLiveWALFile are obsolete only if everything in them is checkpointed; a manifest
        // claiming otherwise is inconsistent, and deleting those files would drop acknowledged batches.
        for number in walFiles where number < entry.firstLiveWALFile {
            let path = walDir + "/" + WALFile.name(number)
            if let beyond = WALReader.firstBatch(after: entry.checkpointSeq, io: io, path: path, fileNumber: number) {
                try tolerate(SextantError(.corrupt, "\(path): holds batch \(beyond), after the checkpoint \(entry.checkpointSeq), but the manifest says log files below \(entry.firstLiveWALFile) are obsolete"))
            }
        }
        var previousSeq = entry.checkpointSeq
        var replayed: [(path: String, records: Int, tornAt: Int64?)] = []
        // Only the last file can have a torn tail: a log file is fsynced before the next one is created (at a
        // freeze, and by recovery before the first write of an open).
        replayLoop: for (i, number) in live.enumerated() {
            let path = walDir + "/" + WALFile.name(number)
            let isLast = i == live.count - 1
            let outcome: WALReader.Outcome
            do throws(SextantError) {
                outcome = try WALReader.replay(
                    io: io, path: path, fileNumber: number, isLastFile: isLast, previousSeq: previousSeq,
                    tolerateDamage: config.readDamagedCollections, salvage: config.salvageDamagedLogs
                ) { (seq, mutations) throws(SextantError) in
                    guard seq > entry.checkpointSeq else { return }
                    if config.salvageDamagedLogs {
                        // Repair: the gaps are the batches lost to damage.
                        guard seq >= replay.nextSeq else { return }
                    } else if seq != replay.nextSeq {
                        throw SextantError(.corrupt, "\(path): batch sequence \(seq) follows \(replay.nextSeq - 1): a log file is missing or damaged")
                    }
                    // A record with a valid checksum can still be crafted: check it as a write would be.
                    for m in mutations where m.kind == .upsert {
                        guard m.vector.count == entry.dimension, m.vector.allSatisfy({ $0.isFinite }) else {
                            if config.salvageDamagedLogs { return }  // repair: the batch is lost
                            throw SextantError(.corrupt, "\(path): batch \(seq) holds a vector of \(m.vector.count) values that the collection (dimension \(entry.dimension)) cannot hold")
                        }
                    }
                    let upserts = mutations.reduce(0) { $0 + ($1.kind == .upsert ? 1 : 0) }
                    if replay.active.count == 0 && upserts > replay.active.capacity {
                        // An empty table is enlarged, not frozen: frozen empty, it would carry no batch of its own.
                        Self.enlargeEmpty(&replay, capacity: upserts)
                    } else if replay.active.count + upserts > replay.active.capacity {
                        // Conservative: this table's batches may share the current file with the next table's.
                        Self.freeze(&replay, walFileAfterFreeze: number, capacity: max(capacity, upserts))
                    }
                    for m in mutations { _ = Self.apply(&replay, m, seq: seq) }
                    replay.nextSeq = seq + 1
                }
            } catch {
                try tolerate(error)
                break replayLoop
            }
            previousSeq = max(previousSeq, outcome.lastSeq)
            replayed.append((path, outcome.records, outcome.tornTail ? outcome.validEnd : nil))
            if let d = outcome.damage, !config.salvageDamagedLogs {
                try tolerate(d)
                break replayLoop
            }
        }
        replay.payloadSpecs = entry.payloadIndexes ?? []
        replay.readOnly = readOnly || damage != nil
        replay.damage = damage

        if !replay.readOnly {
            for (path, records, tornAt) in replayed {
                if records == 0 && tornAt.map({ $0 <= Int64(WALFile.headerSize) }) ?? true {
                    // No batch in it (e.g. the file a previous open started and never wrote): drop it, so
                    // opens without writes do not pile up empty logs.
                    try io.unlink(path)
                    continue
                }
                // Cut a torn tail (a crash artifact: that batch was never acknowledged) so appends start clean,
                // and make what was replayed durable: new records will say it is (their `syncedSeq`), and a
                // power cut after a process crash could otherwise still take it away.
                let fd = try io.open(path, flags: O_WRONLY, mode: 0)
                defer { io.close(fd) }
                if let tornAt { try io.truncate(fd, to: tornAt, path: path) }
                try io.fsync(fd, path: path)
            }
        }
        state = Locked(replay)
        if replay.readOnly { return }

        // Remove what no manifest names: temp files, unpublished segments, old deletion generations, old logs.
        let loadedGraphs = Set(sealed.compactMap { $0.graph != nil ? $0.segment.id : nil })
        let named = Set(entry.segments.flatMap { s in
            [SegmentFile.name(s.id)] + (s.deletionGeneration != 0 ? [SegmentFile.deletionName(s.id, generation: s.deletionGeneration)] : [])
                + (loadedGraphs.contains(s.id) ? [HNSWFile.name(s.id), QuantizedVectors.name(s.id)] : [])
        } + sealed.compactMap { $0.payload != nil ? PayloadIndexFile.name($0.segment.id, generation: $0.payloadGeneration) : nil })
        for name in try io.listDirectory(directory) where name != "wal" && !named.contains(name) {
            try io.unlink(directory + "/" + name)
        }
        for number in walFiles where number < entry.firstLiveWALFile {
            try io.unlink(walDir + "/" + WALFile.name(number))
        }
        for name in try io.listDirectory(walDir) where WALFile.number(fromName: name) == nil {
            try io.unlink(walDir + "/" + name)
        }
        if state.withLock({ !$0.frozen.isEmpty }) { scheduleOptimizer() }
        scheduleIndexing()
    }

    /// Creates the directory and first log file of a new collection (before the manifest names it).
    package static func prepareDirectory(io: any FileIO, directory: String) throws(SextantError) {
        try io.makeDirectory(directory)
        try io.makeDirectory(directory + "/wal")
        try io.syncDirectory(parentDirectory(of: directory))
        try io.syncDirectory(directory)
    }

    // MARK: Writing

    /// Inserts or replaces records (by id). The batch is atomic: after a crash either all of it is
    /// present or none of it.
    ///
    /// Within one batch the same id may appear more than once; the batch applies in order, so the last
    /// occurrence wins, exactly as with consecutive upserts.
    /// - Throws: ``SextantError/Code/dimensionMismatch``, ``SextantError/Code/invalidVector`` (NaN, infinity,
    ///   empty, or a zero vector under cosine), ``SextantError/Code/invalidArgument`` (an empty string id
    ///   or one over 1024 bytes), ``SextantError/Code/diskFull`` / ``SextantError/Code/io``. On any error
    ///   nothing of the batch is applied.
    public func upsert(_ records: [Record]) throws(SextantError) {
        var mutations: [Mutation] = []
        mutations.reserveCapacity(records.count)
        for (i, r) in records.enumerated() {
            try validate(r.id, vector: r.vector, index: i)
            var meta: [UInt8] = []
            if let m = r.metadata { JSONWriter.write(m, into: &meta) }
            mutations.append(.upsert(r.id, vector: r.vector, metadata: meta, document: r.document))
        }
        _ = try commit(.init(mutations: mutations))
    }

    /// Upserts one record.
    public func upsert(_ id: RecordID, vector: [Float], metadata: JSONValue? = nil, document: String? = nil) throws(SextantError) {
        try upsert([Record(id: id, vector: vector, metadata: metadata, document: document)])
    }

    /// Deletes records by id. Ids that do not exist are not an error.
    /// - Returns: how many of the ids named a live record.
    @discardableResult
    public func delete(_ ids: [RecordID]) throws(SextantError) -> Int {
        for (i, id) in ids.enumerated() { try validate(id, index: i) }
        return try commit(.init(mutations: ids.map { .delete($0) }))
    }

    /// Deletes every record passing `filter`, atomically (one batch). The filter is evaluated by the commit
    /// leader, between the batches before it and those after it: a record written concurrently is either
    /// seen by the filter or written after the delete, never deleted after it was rewritten.
    /// - Returns: how many records were deleted.
    @discardableResult
    public func delete(filter: Filter) throws(SextantError) -> Int {
        let compiled = try CompiledFilter(filter, tokenizer: index.tokenizer)
        return try commit(.init(resolvingWith: Mutation.Resolver { () throws(SextantError) -> [Mutation] in
            try self.matchingIDs(compiled).map { .delete($0) }
        }))
    }

    /// The ids of the live records passing `filter`, now.
    private func matchingIDs(_ filter: CompiledFilter) throws(SextantError) -> [RecordID] {
        let view = try readView()
        let masks = try masks(filter, view)
        var ids: [RecordID] = []
        ids.reserveCapacity(masks.total)
        for (i, sealed) in view.segments.enumerated() {
            try masks.segments[i].forEachSet { (row) throws(SextantError) in ids.append(try sealed.segment.recordID(row)) }
        }
        for (j, (table, _, _)) in view.memtables.enumerated() {
            let tableIDs = state.withLock { _ in table.ids }
            masks.memtables[j].forEachSet { ids.append(tableIDs[$0]) }
        }
        return ids
    }

    /// Writes mutations that were validated by the caller (import paths that parse straight into mutations).
    package func commit(_ batch: Mutation.Batch) throws(SextantError) -> Int {
        let writes = !batch.mutations.isEmpty || batch.resolver != nil
        guard writes || batch.freeze else { return 0 }
        try checkWritable()
        if writes, let reason = state.withLock({ $0.writeBlock }) { throw SextantError(.locked, reason) }
        // One log record per batch, and the reader refuses records over 1 GiB: refuse the batch now, before
        // anything is written. (A hidden restore collection writes no log, but its batches are still
        // encoded, with u32 lengths.)
        try Limits.checkBatchBytes(batch.mutations, limit: state.withLock { $0.unlogged } ? Limits.maxUnloggedBatchBytes : Limits.maxBatchBytes)
        return try commits.submit(batch) { group in self.lead(group) }
    }

    /// Throws unless the collection may be written: ``SextantError/Code/readOnly`` for a read-only open,
    /// ``SextantError/Code/corrupt`` for a collection opened up to its damage.
    package func checkWritable() throws(SextantError) {
        let (readOnly, damage) = state.withLock { ($0.readOnly, $0.damage) }
        if let damage {
            throw SextantError(
                .corrupt,
                "collection '\(name)' is damaged and was opened read-only, up to the damage (\(damage.message)); run `sextant repair` to salvage it, or restore a backup",
                cause: damage)
        }
        if readOnly { throw SextantError(.readOnly, "collection '\(name)' is open read-only (the database was opened read-only)") }
    }

    /// Whether nothing on disk may change (a read-only open, or a damaged collection).
    package var isReadOnly: Bool { state.withLock { $0.readOnly } }

    /// The damage a collection opened with ``Configuration/readDamagedCollections`` stops at, if any.
    public var damage: SextantError? { state.withLock { $0.damage } }

    package func validate(_ id: RecordID, index: Int) throws(SextantError) {
        if case .string(let s) = id {
            if s.isEmpty { throw SextantError(.invalidArgument, "record \(index): the id is an empty string") }
            if s.utf8.count > RecordID.maxStringBytes {
                throw SextantError(.invalidArgument, "record \(index): the id is \(s.utf8.count) bytes long; the limit is \(RecordID.maxStringBytes)")
            }
        }
    }

    package func validate(_ id: RecordID, vector: [Float], index: Int) throws(SextantError) {
        _ = try vector.withUnsafeBufferPointer { (v) throws(SextantError) in try validate(id, vector: v, index: index) }
    }

    /// Checks a record and returns its vector's ``inverseNorm(_:)`` (computed in the same pass).
    ///
    /// Besides finite values and the dimension, the vector's norm must be within ``Limits/maxVectorNorm``
    /// (and, under cosine, at least ``Limits/minCosineVectorNorm``), so no distance to it can overflow Float32.
    @discardableResult
    package func validate(_ id: RecordID, vector: UnsafeBufferPointer<Float>, index: Int) throws(SextantError) -> Float {
        try validate(id, index: index)
        guard !vector.isEmpty else { throw SextantError(.invalidVector, "record \(index) (id \(id.quotedForMessages)): the vector is empty") }
        guard vector.count == dimension else {
            throw SextantError(
                .dimensionMismatch,
                "record \(index) (id \(id.quotedForMessages)): the vector has \(vector.count) values; collection '\(name)' has dimension \(dimension)")
        }
        // One pass answers the common case: the sum of squares (in Float64, so it cannot overflow) is
        // finite only when every value is, and within the norm limits only when no distance can overflow.
        let sumsq = sx_sumsq_f64(vector.baseAddress!, vector.count)
        if sumsq > 0 && sumsq <= Self.maxSumOfSquares && (metric != .cosine || sumsq >= Self.minCosineSumOfSquares) {
            return Float(1 / sumsq.squareRoot())
        }
        for (j, x) in vector.enumerated() where !x.isFinite {
            throw SextantError(.invalidVector, "record \(index) (id \(id.quotedForMessages)): vector[\(j)] is \(x.isNaN ? "NaN" : "infinite")")
        }
        if let problem = Limits.normProblem(sumOfSquares: sumsq, metric: metric) {
            throw SextantError(.invalidVector, "record \(index) (id \(id.quotedForMessages)): the vector is refused: \(problem)")
        }
        let inverse = sumsq > 0 ? Float(1 / sumsq.squareRoot()) : 0
        return inverse.isFinite ? inverse : 0  // a tiny vector under a metric that never divides by its norm
    }

    package static let maxSumOfSquares = Limits.maxVectorNorm * Limits.maxVectorNorm
    package static let minCosineSumOfSquares = Limits.minCosineVectorNorm * Limits.minCosineVectorNorm

    /// Runs on the leader's thread with every queued batch.
    /// Commits a group. Batches that resolve their mutations when they are committed (``delete(filter:)``)
    /// are resolved in turn, after everything before them in the group is applied, so they see it.
    private func lead(_ group: [Mutation.Batch]) -> [Result<Int, SextantError>] {
        guard group.contains(where: { $0.resolver != nil }) else { return leadResolved(group) }
        var results: [Result<Int, SextantError>] = []
        var run: [Mutation.Batch] = []
        for batch in group {
            guard let resolver = batch.resolver else {
                run.append(batch)
                continue
            }
            if !run.isEmpty { results += leadResolved(run) }
            run = []
            do throws(SextantError) {
                var resolved = batch
                resolved.mutations = try resolver.body()
                resolved.resolver = nil
                try checkWritable()
                try Limits.checkBatchBytes(resolved.mutations, limit: state.withLock { $0.unlogged } ? Limits.maxUnloggedBatchBytes : Limits.maxBatchBytes)
                results += resolved.mutations.isEmpty && !resolved.freeze ? [.success(0)] : leadResolved([resolved])
            } catch {
                results.append(.failure(error))
            }
        }
        if !run.isEmpty { results += leadResolved(run) }
        return results
    }

    private func leadResolved(_ group: [Mutation.Batch]) -> [Result<Int, SextantError>] {
        do {
            let upserts = group.reduce(0) { $0 + $1.mutations.reduce(0) { $0 + ($1.kind == .upsert ? 1 : 0) } }
            let wantsFreeze = group.contains { $0.freeze }
            try prepareForAppend(upserts: upserts)

            // One framed record per batch, one write, one fsync.
            let firstSeq = state.withLock { $0.nextSeq }
            let batches = group.reduce(0) { $0 + ($1.mutations.isEmpty ? 0 : 1) }
            if batches > 0 && !state.withLock({ $0.unlogged }) {
                let wal = try currentLog()
                // Every record says how far the log was durable when it was framed (see WALRecord).
                let synced = wal.durableSeq
                var out = ByteWriter(capacity: 1 << 16)
                var seq = firstSeq
                for b in group where !b.mutations.isEmpty {
                    WALRecord.encodeBatch(b.mutations, seq: seq, syncedSeq: synced, into: &out)
                    seq += 1
                }
                try wal.append(out.bytes, lastSeq: seq - 1)
                if configuration.durability == .synchronous { try wal.sync() }
            }
            // Durable: apply.
            let results: [Result<Int, SextantError>] = state.withLock { s in
                var seq = firstSeq
                var results: [Result<Int, SextantError>] = []
                for b in group {
                    var existed = 0
                    if !b.mutations.isEmpty {
                        for m in b.mutations where Self.apply(&s, m, seq: seq) { existed += 1 }
                        seq += 1
                    }
                    results.append(.success(existed))
                }
                s.nextSeq = seq
                return results
            }
            if wantsFreeze { try freezeActive() }
            return results
        } catch {
            return group.map { _ in .failure(error) }
        }
    }

    /// Makes room in the active memtable (freezing it when the group does not fit) and applies back-pressure
    /// when flushes fall behind.
    private func prepareForAppend(upserts: Int) throws(SextantError) {
        let (closed, needsFreeze, needsBigger) = state.withLock { s in
            (s.closed, s.active.count > 0 && s.active.count + upserts > s.active.capacity, upserts > s.active.capacity)
        }
        if closed { throw SextantError(.closed, "collection '\(name)' is closed") }
        if needsFreeze {
            try freezeActive(minimumCapacity: upserts)
        } else if needsBigger {
            state.withLock { s in Self.enlargeEmpty(&s, capacity: upserts) }
        }
        // Back-pressure: do not let unflushed tables pile up without bound.
        if !configuration.backgroundWork {
            if state.withLock({ $0.frozen.count }) > Self.maxFrozen {
                try runOptimizerNow { () throws(SextantError) in try self.flushAllFrozen() }
            }
            return
        }
        optimizerDone.lock()
        defer { optimizerDone.unlock() }
        while true {
            let (frozen, error) = state.withLock { ($0.frozen.count, $0.optimizerError) }
            if frozen <= Self.maxFrozen { return }
            if let error { throw error }
            _ = optimizerDone.wait(until: Date().addingTimeInterval(0.1))
        }
    }

    /// The log file to append to, created on first use. Only the commit leader calls this, so there is
    /// no race on creation; the file is made durable (file and directory fsync) before it is used.
    private func currentLog() throws(SextantError) -> WALWriter {
        let (existing, number, next) = state.withLock { ($0.wal, $0.nextWALNumber, $0.nextSeq) }
        if let existing { return existing }
        // Everything before this file is durable: earlier files were fsynced when the memtable was frozen, or
        // by recovery.
        let wal = try WALWriter(io: io, directory: directory + "/wal", fileNumber: number, durableSeq: next - 1)
        state.withLock { s in
            s.wal = wal
            s.nextWALNumber = number + 1
        }
        return wal
    }

    /// Freezes the active memtable; the next batch starts a new log file. Only the commit leader calls this.
    private func freezeActive(minimumCapacity: Int = 0) throws(SextantError) {
        let (wal, empty) = state.withLock { ($0.wal, $0.active.count == 0) }
        if empty { return }
        // The frozen table's batches are all in `wal` and older files; make them durable before they are
        // only recoverable from there (the background syncer only syncs the current file).
        try wal?.sync()
        state.withLock { s in
            // Every batch of the frozen table is in a file numbered below the next one.
            Self.freeze(&s, walFileAfterFreeze: s.nextWALNumber, capacity: max(memtableCapacity, minimumCapacity))
            s.wal = nil
        }
        scheduleOptimizer()
    }

    /// Replaces the empty active table by a larger one. The new table keeps the old one's `maxSeq`: batches
    /// that only deleted leave no row behind, yet the checkpoint of the table's flush must cover them.
    private static func enlargeEmpty(_ s: inout State, capacity: Int) {
        precondition(s.active.count == 0, "only an empty table is replaced")
        let bigger = Memtable(dimension: s.active.dimension, capacity: capacity)
        bigger.maxSeq = s.active.maxSeq
        s.active = bigger
    }

    private static func freeze(_ s: inout State, walFileAfterFreeze: UInt64, capacity: Int) {
        s.active.walFileAfterFreeze = walFileAfterFreeze
        s.frozen.append(s.active)
        s.active = Memtable(dimension: s.active.dimension, capacity: capacity)
    }

    /// Applies one durable mutation to the in-memory state. Returns whether the id named a live record.
    private static func apply(_ s: inout State, _ m: Mutation, seq: UInt64) -> Bool {
        let existed = removeLive(&s, m.id, m.key)
        if m.kind == .upsert {
            _ = s.active.append(m, seq: seq)
        } else {
            s.active.maxSeq = max(s.active.maxSeq, seq)
        }
        return existed
    }

    /// Marks the live row holding `id` deleted, wherever it is. At most one row per id is live.
    private static func removeLive(_ s: inout State, _ id: RecordID, _ key: [UInt8]) -> Bool {
        if let row = s.active.index.removeValue(forKey: id) {
            return s.active.deleted.insert(Int(row))
        }
        for table in s.frozen.reversed() {
            if let row = table.index[id], !table.deleted.contains(Int(row)) {
                table.deleted.insert(Int(row))
                return true
            }
        }
        let hash = key.withUnsafeBytes { keyHash($0) }
        for i in s.sealed.indices.reversed() {
            // The lookup sections were verified when the segment was opened, so this cannot fail on
            // checksums; a structural error would be a bug, and is treated as "absent".
            let row = key.withUnsafeBytes { k in (try? s.sealed[i].segment.find(k, hash: hash)) ?? nil }
            if let row, !s.sealed[i].deleted.contains(row) {
                s.sealed[i].deleted.insert(row)
                return true
            }
        }
        return false
    }

    // MARK: Reading

    /// Takes a consistent read view (O(number of segments); no data is copied).
    package func readView() throws(SextantError) -> ReadView {
        try state.withLock { (s) throws(SextantError) -> ReadView in
            if s.closed { throw SextantError(.closed, "collection '\(name)' is closed") }
            return ReadView(
                segments: s.sealed,
                memtables: ([s.active] + s.frozen.reversed()).map { ($0, $0.count, $0.deleted) })
        }
    }

    /// The number of live records passing `filter`.
    public func count(filter: Filter) throws(SextantError) -> Int {
        if filter.isEmpty { return try count() }
        let compiled = try CompiledFilter(filter, tokenizer: index.tokenizer)
        return try masks(compiled, try readView()).total
    }

    /// The number of live records.
    public func count() throws(SextantError) -> Int {
        try state.withLock { (s) throws(SextantError) -> Int in
            if s.closed { throw SextantError(.closed, "collection '\(name)' is closed") }
            return s.sealed.reduce(0) { $0 + $1.liveRows } + s.active.liveCount + s.frozen.reduce(0) { $0 + $1.liveCount }
        }
    }

    /// Fetches records by id, in the order asked; ids that do not exist are skipped.
    public func get(_ ids: [RecordID], include: Include = .all) throws(SextantError) -> [StoredRecord] {
        var out: [StoredRecord] = []
        try state.withLock { (s) throws(SextantError) in
            if s.closed { throw SextantError(.closed, "collection '\(name)' is closed") }
            for id in ids {
                let key = id.key
                if let loc = try Self.locate(s, id, key) {
                    out.append(try Self.materialize(loc, include: include, dimension: dimension))
                }
            }
        }
        return out
    }

    package enum Location {
        case memtable(Memtable, Int)
        case segment(Segment, Int)
    }

    private static func locate(_ s: State, _ id: RecordID, _ key: [UInt8]) throws(SextantError) -> Location? {
        if let row = s.active.index[id] { return .memtable(s.active, Int(row)) }
        for table in s.frozen.reversed() {
            if let row = table.index[id], !table.deleted.contains(Int(row)) { return .memtable(table, Int(row)) }
        }
        let hash = key.withUnsafeBytes { keyHash($0) }
        for sealed in s.sealed.reversed() {
            let row = try key.withBytes { (k) throws(SextantError) in try sealed.segment.find(k, hash: hash) }
            if let row, !sealed.deleted.contains(row) { return .segment(sealed.segment, row) }
        }
        return nil
    }

    /// Reads the parts of a row that were asked for. Memtable rows must be read under the state lock.
    package static func materialize(_ loc: Location, include: Include, dimension: Int) throws(SextantError) -> StoredRecord {
        switch loc {
        case .memtable(let t, let row):
            var r = StoredRecord(id: t.ids[row])
            if include.contains(.vector) { r.vector = Array(t.vector(row)) }
            if include.contains(.metadata), !t.metadata[row].isEmpty {
                r.metadata = try t.metadata[row].withBytes { (b) throws(SextantError) in try JSONParser.parse(b) }
            }
            if include.contains(.document) { r.document = t.documents[row] }
            return r
        case .segment(let seg, let row):
            var r = StoredRecord(id: try seg.recordID(row))
            if include.contains(.vector) {
                r.vector = Array(UnsafeBufferPointer(start: try seg.vectors() + row * dimension, count: dimension))
            }
            if include.contains(.metadata) {
                let m = try seg.metadata(row)
                if !m.isEmpty {
                    do { r.metadata = try JSONParser.parse(m) } catch {
                        throw SextantError(.corrupt, "\(seg.path): metadata of row \(row) is not valid JSON: \(error.message)")
                    }
                }
            }
            if include.contains(.document), let d = try seg.document(row) {
                r.document = String(decoding: d, as: UTF8.self)
            }
            return r
        }
    }

    /// Reads rows located in a view; memtable rows are read under the state lock.
    package func materialize(_ locations: [Location], include: Include) throws(SextantError) -> [StoredRecord] {
        try state.withLock { (_) throws(SextantError) -> [StoredRecord] in
            var out: [StoredRecord] = []
            out.reserveCapacity(locations.count)
            for loc in locations { out.append(try Self.materialize(loc, include: include, dimension: dimension)) }
            return out
        }
    }

    /// Lists live records in id order (integers, then strings), `limit` at a time.
    ///
    /// Every record that stays live during a scan is returned exactly once, even while writes, flushes and
    /// compactions run, because the position is an id rather than a row number.
    /// - Parameters:
    ///   - after: the `nextAfter` of the previous page, or nil to start.
    /// - Complexity: O(segments · (log n + limit)) plus a sort of the memtable's ids.
    public func scroll(
        after: RecordID? = nil, limit: Int = 100, filter: Filter? = nil, include: Include = [.metadata, .document]
    ) throws(SextantError) -> ScrollPage {
        guard limit > 0 else { throw SextantError(.invalidArgument, "scroll limit must be positive, not \(limit)") }
        let compiled = try filter.flatMap { (f) throws(SextantError) in f.isEmpty ? nil : try CompiledFilter(f, tokenizer: index.tokenizer) }
        let view = try readView()
        let afterKey = after?.key
        var candidates: [(key: [UInt8], loc: Location)] = []
        for sealed in view.segments {
            let segment = sealed.segment, deleted = sealed.deleted
            var pos = 0
            if let afterKey {
                pos = try afterKey.withBytes { (k) throws(SextantError) in try segment.lowerBound(k, inclusive: false) }
            }
            var taken = 0
            while pos < segment.rowCount && taken < limit {
                let row = try segment.orderedRow(pos)
                pos += 1
                if deleted.contains(row) { continue }
                if let compiled, !(try passes(compiled, segment, row)) { continue }
                candidates.append((Array(try segment.key(row)), .segment(segment, row)))
                taken += 1
            }
        }
        for (table, count, deleted) in view.memtables {
            // Copies of the arrays (copy-on-write: no bytes move), read outside the lock.
            let (keys, ids, metadata) = state.withLock { _ in (table.keys, table.ids, table.metadata) }
            var rows: [(key: [UInt8], row: Int)] = []
            for row in 0..<count where !deleted.contains(row) {
                let k = keys[row]
                if let afterKey, compareKeyArrays(k, afterKey) <= 0 { continue }
                rows.append((k, row))
            }
            rows.sort { compareKeyArrays($0.key, $1.key) < 0 }
            var taken = 0
            for r in rows where taken < limit {
                if let compiled, !(try passes(compiled, id: ids[r.row], metadataBytes: metadata[r.row], where: "memtable row \(r.row)")) { continue }
                candidates.append((r.key, .memtable(table, r.row)))
                taken += 1
            }
        }
        candidates.sort { compareKeyArrays($0.key, $1.key) < 0 }
        let page = Array(candidates.prefix(limit))
        let records = try materialize(page.map(\.loc), include: include)
        return ScrollPage(records: records, nextAfter: page.count == limit ? records.last?.id : nil)
    }

    // MARK: Maintenance

    /// Freezes the in-memory table and writes it to a segment now (normally this happens in the background).
    public func flush() throws(SextantError) {
        try checkWritable()
        _ = try commits.submit(.init(mutations: [], freeze: true)) { group in self.lead(group) }
        try runOptimizerNow { () throws(SextantError) in try self.flushAllFrozen() }
    }

    /// Flushes, then merges all segments into one without deleted rows, freeing their disk space.
    public func compact() throws(SextantError) {
        try checkWritable()
        try flush()
        try runOptimizerNow { () throws(SextantError) in
            let groups = state.withLock { s in Self.mergeRuns(s.sealed, limit: configuration.maxSegmentBytes) }
            for group in groups {
                let rewrite = state.withLock { s in
                    group.count > 1 || s.sealed.contains { group.contains($0.segment.id) && $0.deleted.setCount > 0 }
                }
                if rewrite { try self.merge(ids: group) }
            }
        }
    }

    /// Writes everything replayed from the log to segments and publishes a checkpoint past every log file, so
    /// the log files become obsolete — even when the memtable holds no rows (only deletes, or nothing). Repair
    /// uses it after a salvaging open, so damaged log files are no longer needed.
    package func checkpointEverything() throws(SextantError) {
        try checkWritable()
        try flush()
        try runOptimizerNow { () throws(SextantError) in
            state.withLock { s in
                s.active.maxSeq = max(s.active.maxSeq, s.nextSeq - 1)
                Self.freeze(&s, walFileAfterFreeze: s.nextWALNumber, capacity: memtableCapacity)
                s.wal = nil
            }
            try flushAllFrozen()
        }
    }

    /// Splits `segments`, in order, into runs whose live vector bytes stay within `limit` (a segment larger
    /// than `limit` by itself forms its own run). Merging each run bounds segment size, so no single graph
    /// build grows without end.
    static func mergeRuns(_ segments: [SealedSegment], limit: Int) -> [[UInt64]] {
        var runs: [[UInt64]] = []
        var run: [UInt64] = []
        var bytes = 0
        for s in segments {
            let b = s.liveRows * s.segment.dimension * 4
            if !run.isEmpty && bytes + b > limit {
                runs.append(run)
                run = []
                bytes = 0
            }
            run.append(s.segment.id)
            bytes += b
        }
        if !run.isEmpty { runs.append(run) }
        return runs
    }

    /// A builder for a new segment of this collection, its id taken now: for a loader that writes segments
    /// itself (a restore into its hidden collection), bypassing the memtable and the log.
    package func makeSegmentBuilder() throws(SextantError) -> SegmentBuilder {
        let segmentID = state.withLock { s in
            defer { s.nextSegmentID += 1 }
            return s.nextSegmentID
        }
        return try SegmentBuilder(io: io, path: directory + "/" + SegmentFile.name(segmentID), segmentID: segmentID, dimension: dimension, metric: metric)
    }

    /// Finishes `builder` (see ``makeSegmentBuilder()``) and publishes its segment with its payload index.
    /// During a bulk load its graph waits for the load to end.
    package func publishBuiltSegment(_ builder: SegmentBuilder) throws(SextantError) -> Segment {
        try builder.finish(maxSeq: 0)
        let segment = try Segment(io: io, path: builder.path, expectedID: builder.segmentID)
        var created = SealedSegment(segment: segment, deleted: Bitmap(count: segment.rowCount), generation: 0, persistedMarks: 0)
        try runOptimizerNow { () throws(SextantError) in
            try attachPayloadIndex(&created)
            try publish(
                removing: [], adding: created, mapMarks: { _, _ in }, checkpoint: nil,
                finish: { s in if s.bulkLoads > 0 { s.deferred.insert(segment.id) } })
        }
        return segment
    }

    /// Marks the start of a bulk load (an import): segments flushed until the matching
    /// ``endBulkLoad()`` wait for it before getting a graph.
    package func beginBulkLoad() {
        state.withLock { $0.bulkLoads += 1 }
    }

    /// Ends a bulk load. When the last one ends, the rest of the memtable is flushed with the import's
    /// segments and those are merged into as few segments as `maxSegmentBytes` allows, in the background;
    /// then their graphs are built. ``waitForIndexing()`` waits for all of it.
    package func endBulkLoad(merging: Bool = true) {
        if !merging {
            // The loader sized its segments itself; their graphs come with the next indexing pass.
            state.withLock { s in
                s.bulkLoads -= 1
                if s.bulkLoads == 0 { s.deferred.removeAll() }
            }
            return
        }
        let last = state.withLock { s in s.bulkLoads == 1 && !s.deferred.isEmpty && !s.closed }
        guard last, configuration.backgroundWork else {
            state.withLock { s in
                s.bulkLoads -= 1
                if s.bulkLoads == 0 { s.deferred.removeAll() }
            }
            return
        }
        // The tail of the import joins the merge; its rows are durable in the log whatever happens here.
        _ = try? commits.submit(.init(mutations: [], freeze: true)) { group in self.lead(group) }
        optimizer.async { [self] in
            do throws(SextantError) {
                try flushAllFrozen()
                let runs = state.withLock { s in
                    Self.mergeRuns(s.sealed.filter { s.deferred.contains($0.segment.id) }, limit: configuration.maxSegmentBytes)
                }
                // A close does not wait for the merge: the segments stay as they are and get graphs of their own.
                for run in runs where run.count > 1 && !state.withLock({ $0.closed }) { try merge(ids: run) }
            } catch {
                state.withLock { $0.optimizerError = error }
            }
            state.withLock { s in
                s.bulkLoads -= 1
                if s.bulkLoads == 0 { s.deferred.removeAll() }
            }
            scheduleIndexing()
        }
    }

    /// Runs `body` on the optimizer queue and waits for it.
    package func runOptimizerNow(_ body: () throws(SextantError) -> Void) throws(SextantError) {
        var failure: SextantError?
        optimizer.sync {
            do throws(SextantError) { try body() } catch { failure = error }
        }
        if let failure { throw failure }
    }

    package func scheduleOptimizer() {
        guard configuration.backgroundWork, !isReadOnly else { return }
        let already = state.withLock { s in
            defer { s.optimizerScheduled = true }
            return s.optimizerScheduled
        }
        if already { return }
        optimizer.async { [self] in backgroundPass(attempt: 0) }
    }

    private func backgroundPass(attempt: Int) {
        state.withLock { $0.optimizerScheduled = false }
        do {
            try flushAllFrozen()
            try ensurePayloadIndexes()
            try backgroundCompaction()
            state.withLock { s in
                s.optimizerError = nil
                s.backgroundFailures = 0
                s.backgroundRetryAt = nil
                s.backgroundNeedsBytes = nil
            }
        } catch {
            // Typically a full disk or an I/O error. What the attempt wrote is already removed; writers see the
            // error through back-pressure. Retrying at once would redo the same work and fail the same way:
            // wait, longer after each failure (up to a minute), and after a full disk until the file system
            // has room for the pass (checked without writing anything).
            let base = configuration.backgroundRetryDelay
            let delay = min(120 * base, base * Double(1 << min(attempt, 7)))
            let needs = error.code == .diskFull ? bytesNeededForBackgroundWork() : nil
            let closed = state.withLock { s in
                s.optimizerError = error
                s.backgroundFailures += 1
                s.backgroundRetryAt = Date().addingTimeInterval(delay)
                s.backgroundNeedsBytes = needs
                return s.closed
            }
            if !closed { retryBackgroundPass(after: delay, attempt: attempt + 1) }
        }
        optimizerDone.lock()
        optimizerDone.broadcast()
        optimizerDone.unlock()
    }

    private func retryBackgroundPass(after delay: Double, attempt: Int) {
        optimizer.asyncAfter(deadline: .now() + delay) { [self] in
            let (closed, needs) = state.withLock { ($0.closed, $0.backgroundNeedsBytes) }
            if closed { return }
            if let needs, let free = io.availableBytes(directory), free < Int64(needs) {
                // Still no room: look again later, without touching the disk.
                let next = min(120 * configuration.backgroundRetryDelay, delay * 2)
                state.withLock { $0.backgroundRetryAt = Date().addingTimeInterval(next) }
                retryBackgroundPass(after: next, attempt: attempt)
                return
            }
            backgroundPass(attempt: attempt)
        }
    }

    /// Bytes the pending flushes would write (vectors, payloads, a margin for indexes and the manifest).
    private func bytesNeededForBackgroundWork() -> Int {
        state.withLock { s in
            let table = s.frozen.reduce(0) { $0 + $1.count * dimension * 4 + $1.payloadBytes }
            return table + table / 4 + (1 << 20)
        }
    }

    /// The state of the background work (flushes, compactions): failing or not, since when, retrying when.
    public var backgroundStatus: BackgroundStatus {
        state.withLock { s in
            BackgroundStatus(
                lastError: s.optimizerError?.message, failures: s.backgroundFailures,
                retryInSeconds: s.backgroundRetryAt.map { max(0, $0.timeIntervalSinceNow) }, waitingForBytes: s.backgroundNeedsBytes,
                unflushedRows: s.frozen.reduce(0) { $0 + $1.count })
        }
    }

    private func backgroundCompaction() throws(SextantError) {
        let pick: [Int] = state.withLock { s in
            if s.closed { return [] }
            if s.sealed.count > configuration.maxSegments {
                // The smallest segments, as many as fit in one segment of `maxSegmentBytes` (at most enough
                // to come back to half the limit): a collection of many full-size segments is left as it is.
                let k = s.sealed.count - configuration.maxSegments / 2 + 1
                var pick: [Int] = []
                var bytes = 0
                for i in s.sealed.indices.sorted(by: { s.sealed[$0].liveRows < s.sealed[$1].liveRows }).prefix(k) {
                    let b = s.sealed[i].liveRows * dimension * 4
                    if bytes + b > configuration.maxSegmentBytes { break }
                    pick.append(i)
                    bytes += b
                }
                if pick.count > 1 { return pick.sorted() }
            }
            if let i = s.sealed.indices.first(where: {
                Double(s.sealed[$0].deleted.setCount) > configuration.compactDeletedFraction * Double(s.sealed[$0].segment.rowCount)
            }) {
                return [i]
            }
            return []
        }
        if !pick.isEmpty { try merge(pick) }
    }

    /// Flushes every frozen memtable, oldest first. Runs on the optimizer queue.
    private func flushAllFrozen() throws(SextantError) {
        while let table = state.withLock({ $0.closed ? nil : $0.frozen.first }) {
            try flush(table)
        }
    }

    private func flush(_ table: Memtable) throws(SextantError) {
        let (before, segmentID) = state.withLock { s in
            defer { s.nextSegmentID += 1 }
            return (table.deleted, s.nextSegmentID)
        }
        let rows = (0..<table.count).filter { !before.contains($0) }
        var newRowOf = [Int32](repeating: -1, count: table.count)
        for (i, r) in rows.enumerated() { newRowOf[r] = Int32(i) }
        var created: SealedSegment?
        do throws(SextantError) {
        if !rows.isEmpty {
            let path = directory + "/" + SegmentFile.name(segmentID)
            try SegmentWriter.write(
                io: io, path: path, segmentID: segmentID, dimension: dimension, metric: metric, maxSeq: table.maxSeq,
                source: MemtableRows(table: table, rows: rows))
            let segment = try Segment(io: io, path: path, expectedID: segmentID)
            _ = try segment.section(.keys)
            _ = try segment.section(.keyOrder)
            _ = try segment.section(.bloom)
            created = SealedSegment(segment: segment, deleted: Bitmap(count: rows.count), generation: 0, persistedMarks: 0)
            try attachPayloadIndex(&created!)
        }
        try publish(
            removing: [], adding: created, mapMarks: { s, bitmap in
                // Rows of the table deleted after `before` was taken map into the new segment.
                let now = table.deleted
                for w in 0..<now.words.count where now.words[w] != before.words[safe: w] ?? 0 {
                    var bits = now.words[w] & ~(before.words[safe: w] ?? 0)
                    while bits != 0 {
                        let r = w << 6 | bits.trailingZeroBitCount
                        bits &= bits - 1
                        if newRowOf[r] >= 0 { bitmap.insert(Int(newRowOf[r])) }
                    }
                }
            },
            checkpoint: (table.maxSeq, table.walFileAfterFreeze),
            finish: { s in
                if let i = s.frozen.firstIndex(where: { $0 === table }) { s.frozen.remove(at: i) }
                if s.bulkLoads > 0, let id = created?.segment.id { s.deferred.insert(id) }
            })
        } catch {
            // Not published: remove what this attempt wrote now, once, rather than leaving it for the next open.
            if !DatabaseCore.mayHavePublished(error) { removeUnpublished(segmentID: segmentID) }
            throw error
        }
        scheduleIndexing()
    }

    /// Removes every file of a segment that was never published (the segment, its index file, temp files).
    private func removeUnpublished(segmentID: UInt64) {
        let prefix = hex16(segmentID) + "."
        for name in (try? io.listDirectory(directory)) ?? [] where name.hasPrefix(prefix) {
            try? io.unlink(directory + "/" + name)
        }
    }

    /// Merges the sealed segments with these ids (those still present) into one.
    private func merge(ids: [UInt64]) throws(SextantError) {
        let indices = state.withLock { s in s.sealed.indices.filter { ids.contains(s.sealed[$0].segment.id) } }
        if !indices.isEmpty { try merge(indices) }
    }

    /// Merges the sealed segments at `indices` into one, dropping deleted rows. Runs on the optimizer queue.
    private func merge(_ indices: [Int]) throws(SextantError) {
        let (inputs, segmentID) = state.withLock { s in
            defer { s.nextSegmentID += 1 }
            let inputs = indices.map { s.sealed[$0] }
            s.merging.formUnion(inputs.map(\.segment.id))
            return (inputs, s.nextSegmentID)
        }
        defer {
            state.withLock { s in s.merging.subtract(inputs.map(\.segment.id)) }
            scheduleIndexing()
        }
        var rows: [(segment: Segment, row: Int)] = []
        var newRowOf: [[Int32]] = []
        for input in inputs {
            try input.segment.verifyAll(releasingPages: true)
            var map = [Int32](repeating: -1, count: input.segment.rowCount)
            for r in 0..<input.segment.rowCount where !input.deleted.contains(r) {
                map[r] = Int32(rows.count)
                rows.append((input.segment, r))
            }
            newRowOf.append(map)
        }
        var created: SealedSegment?
        do throws(SextantError) {
        if !rows.isEmpty {
            let path = directory + "/" + SegmentFile.name(segmentID)
            try SegmentWriter.write(
                io: io, path: path, segmentID: segmentID, dimension: dimension, metric: metric,
                maxSeq: inputs.map(\.segment.maxSeq).max() ?? 0, source: SegmentRows(rows: rows))
            let segment = try Segment(io: io, path: path, expectedID: segmentID)
            _ = try segment.section(.keys)
            _ = try segment.section(.keyOrder)
            _ = try segment.section(.bloom)
            created = SealedSegment(segment: segment, deleted: Bitmap(count: rows.count), generation: 0, persistedMarks: 0)
            try attachPayloadIndex(&created!)
        }
        let ids = Set(inputs.map(\.segment.id))
        try publish(
            removing: ids, adding: created,
            mapMarks: { s, bitmap in
                for (k, input) in inputs.enumerated() {
                    guard let now = s.sealed.first(where: { $0.segment.id == input.segment.id })?.deleted else { continue }
                    if now.setCount == input.deleted.setCount { continue }
                    now.forEachSet { r in
                        if !input.deleted.contains(r), newRowOf[k][r] >= 0 { bitmap.insert(Int(newRowOf[k][r])) }
                    }
                }
            },
            checkpoint: nil,
            finish: { s in
                // A merge of segments an import deferred is still part of that import.
                if let id = created?.segment.id, ids.allSatisfy({ s.deferred.contains($0) }) { s.deferred.insert(id) }
                s.deferred.subtract(ids)
            })
        } catch {
            if !DatabaseCore.mayHavePublished(error) { removeUnpublished(segmentID: segmentID) }
            throw error
        }
        // The inputs are no longer named by the manifest: remove them (readers still holding a view keep
        // their mappings, which outlive the unlink).
        scheduleIndexing()
        for input in inputs {
            try? io.unlink(directory + "/" + SegmentFile.name(input.segment.id))
            try? io.unlink(directory + "/" + HNSWFile.name(input.segment.id))
            try? io.unlink(directory + "/" + QuantizedVectors.name(input.segment.id))
            if input.payload != nil { try? io.unlink(directory + "/" + PayloadIndexFile.name(input.segment.id, generation: input.payloadGeneration)) }
            if input.generation != 0 {
                try? io.unlink(directory + "/" + SegmentFile.deletionName(input.segment.id, generation: input.generation))
            }
        }
    }

    /// Publishes a change of the segment list: persists new deletion marks, swaps the manifest, then
    /// updates the in-memory state. `mapMarks` translates marks made since the new segment's rows were
    /// chosen; it runs twice (before writing deletion files, and again under the lock at the swap, to
    /// catch marks made in between — those are also in the log after the checkpoint, so they need not be
    /// in the deletion file).
    private func publish(
        removing: Set<UInt64>, adding: SealedSegment?,
        mapMarks: (State, inout Bitmap) -> Void,
        checkpoint: (seq: UInt64, firstLiveWALFile: UInt64)?,
        finish: (inout State) -> Void
    ) throws(SextantError) {
        // Marks can come from batches only written, not yet fsynced (interval durability). A deletion file
        // must never be more durable than the batch that made its marks.
        try state.withLock { $0.wal }?.sync()

        // 1. Decide what to persist.
        var (toPersist, newSegment, firstGen) = state.withLock { s -> ([(Int, Bitmap)], SealedSegment?, UInt64) in
            var persist: [(Int, Bitmap)] = []
            for (i, seg) in s.sealed.enumerated() where !removing.contains(seg.segment.id) && seg.deleted.setCount != seg.persistedMarks {
                persist.append((i, seg.deleted))
            }
            var created = adding
            if created != nil { mapMarks(s, &created!.deleted) }
            let first = s.nextDeletionGeneration
            s.nextDeletionGeneration += UInt64(persist.count + 1)
            return (persist, created, first)
        }
        // 2. Write deletion files (new generations).
        var generations: [UInt64: (UInt64, Int)] = [:]  // segment id → (generation, marks)
        var gen = firstGen
        let sealedSnapshot = state.withLock { $0.sealed }
        for (i, bitmap) in toPersist {
            let seg = sealedSnapshot[i].segment
            try io.writeFileAtomically(
                directory + "/" + SegmentFile.deletionName(seg.id, generation: gen),
                DeletionFile.encode(bitmap, segmentID: seg.id, rowCount: seg.rowCount))
            generations[seg.id] = (gen, bitmap.setCount)
            gen += 1
        }
        if var created = newSegment, created.deleted.setCount > 0 {
            let seg = created.segment
            try io.writeFileAtomically(
                directory + "/" + SegmentFile.deletionName(seg.id, generation: gen),
                DeletionFile.encode(created.deleted, segmentID: seg.id, rowCount: seg.rowCount))
            created.generation = gen
            created.persistedMarks = created.deleted.setCount
            newSegment = created
        }
        toPersist.removeAll()

        // 3. Swap the manifest.
        let segmentEntries: [Manifest.SegmentEntry] = sealedSnapshot.compactMap { s in
            if removing.contains(s.segment.id) { return nil }
            let (g, _) = generations[s.segment.id] ?? (s.generation, s.persistedMarks)
            return Manifest.SegmentEntry(
                id: s.segment.id, rows: s.segment.rowCount, deletionGeneration: g, bytes: s.segment.fileSize,
                graph: s.graph != nil ? true : nil, quantized: s.codes != nil ? true : nil,
                payload: s.payload != nil ? s.payloadGeneration : nil)
        } + (newSegment.map { [Manifest.SegmentEntry(
            id: $0.segment.id, rows: $0.segment.rowCount, deletionGeneration: $0.generation, bytes: $0.segment.fileSize,
            payload: $0.payload != nil ? $0.payloadGeneration : nil)] } ?? [])
        let (nextSegmentID, nextGeneration) = state.withLock { ($0.nextSegmentID, $0.nextDeletionGeneration) }
        do throws(SextantError) {
        try database.publish { m throws(SextantError) in
            guard let i = m.collections.firstIndex(where: { $0.id == id }) else {
                throw SextantError(.closed, "collection '\(name)' was dropped")
            }
            // A graph published by the indexer after our snapshot was taken stays published.
            let published = Dictionary(uniqueKeysWithValues: m.collections[i].segments.map { ($0.id, $0) })
            m.collections[i].segments = segmentEntries.map { e in
                var e = e
                if published[e.id]?.graph == true { e.graph = true }
                if published[e.id]?.quantized == true { e.quantized = true }
                return e
            }
            m.collections[i].nextSegmentID = nextSegmentID
            m.collections[i].nextDeletionGeneration = nextGeneration
            // A checkpoint only moves forward: a table frozen empty (maxSeq 0) or flushed after a later one
            // must not pull it back below segments already published, nor revive obsolete log files.
            if let checkpoint {
                m.collections[i].checkpointSeq = max(m.collections[i].checkpointSeq, checkpoint.seq)
                m.collections[i].firstLiveWALFile = max(m.collections[i].firstLiveWALFile, checkpoint.firstLiveWALFile)
            }
        }
        } catch {
            // The deletion generations written for this publish are named by no manifest: remove them now.
            if !DatabaseCore.mayHavePublished(error) {
                for (id, (g, _)) in generations { try? io.unlink(directory + "/" + SegmentFile.deletionName(id, generation: g)) }
                if let created = newSegment, created.generation != 0 {
                    try? io.unlink(directory + "/" + SegmentFile.deletionName(created.segment.id, generation: created.generation))
                }
            }
            throw error
        }

        // 4. Swap the in-memory state.
        var obsoleteDeletionFiles: [String] = []
        state.withLock { s in
            for i in s.sealed.indices {
                if let (g, marks) = generations[s.sealed[i].segment.id] {
                    if s.sealed[i].generation != 0 {
                        obsoleteDeletionFiles.append(SegmentFile.deletionName(s.sealed[i].segment.id, generation: s.sealed[i].generation))
                    }
                    s.sealed[i].generation = g
                    s.sealed[i].persistedMarks = marks
                }
            }
            if var created = newSegment {
                mapMarks(s, &created.deleted)
                if let first = s.sealed.firstIndex(where: { removing.contains($0.segment.id) }) {
                    s.sealed.insert(created, at: first)
                } else {
                    s.sealed.append(created)
                }
            }
            s.sealed.removeAll { removing.contains($0.segment.id) }
            finish(&s)
        }
        for name in obsoleteDeletionFiles { try? io.unlink(directory + "/" + name) }
        if let checkpoint {
            let walDir = directory + "/wal"
            for name in (try? io.listDirectory(walDir)) ?? [] {
                if let n = WALFile.number(fromName: name), n < checkpoint.firstLiveWALFile { try? io.unlink(walDir + "/" + name) }
            }
        }
    }

    /// Background fsync for interval durability.
    package func syncLog() {
        let wal = state.withLock { $0.closed ? nil : $0.wal }
        try? wal?.sync()
    }

    /// Stops background work and makes the log durable. Further calls fail with ``SextantError/Code/closed``.
    ///
    /// With `flushLargeLog`, a memtable holding more than ``Self/flushOnCloseBytes`` (whose batches the next
    /// open would have to replay from the log) is flushed to a segment first, so open stays O(metadata).
    package func close(flushLargeLog: Bool = true) {
        if flushLargeLog && !isReadOnly {
            let (closed, unflushed, frozen) = state.withLock { s in
                (s.closed, s.active.count * dimension * 4 + s.active.payloadBytes, s.frozen.count)
            }
            if !closed && (unflushed > Self.flushOnCloseBytes || frozen > 0) { try? flush() }
        }
        let wal = state.withLock { s in
            s.closed = true
            return s.wal
        }
        optimizer.sync {}
        indexer.sync {}
        try? wal?.closeCleanly()
    }

    /// Unflushed bytes above which `close` flushes. 4 MiB replays in a few milliseconds.
    package static let flushOnCloseBytes = 4 << 20

    /// Shape and size: segments, rows, bytes on disk.
    public func info() throws(SextantError) -> CollectionInfo {
        let (segments, memRows, count) = try state.withLock { (s) throws(SextantError) in
            if s.closed { throw SextantError(.closed, "collection '\(name)' is closed") }
            return (
                s.sealed.map {
                    CollectionInfo.SegmentInfo(
                        id: $0.segment.id, rows: $0.segment.rowCount, liveRows: $0.liveRows, bytes: $0.segment.fileSize,
                        index: $0.graph != nil ? "graph" : s.building == $0.segment.id ? "building" : "exact",
                        indexBytes: ($0.graphFile?.byteCount ?? 0) + ($0.codes?.byteCount ?? 0),
                        payloadIndexBytes: $0.payload?.byteCount ?? 0)
                },
                s.active.count + s.frozen.reduce(0) { $0 + $1.count },
                s.sealed.reduce(0) { $0 + $1.liveRows } + s.active.liveCount + s.frozen.reduce(0) { $0 + $1.liveCount })
        }
        return CollectionInfo(
            name: name, dimension: dimension, metric: metric, count: count, segments: segments,
            memtableRows: memRows, indexedRows: segments.filter { $0.index == "graph" }.reduce(0) { $0 + $1.rows },
            indexConfiguration: index, payloadIndexes: payloadIndexes, bytesOnDisk: diskUsage(directory),
            background: backgroundStatus, damage: damage?.message, readOnly: isReadOnly)
    }

    private func diskUsage(_ path: String) -> Int {
        var total = 0
        for name in (try? io.listDirectory(path)) ?? [] {
            let p = path + "/" + name
            if io.isDirectory(p) {
                total += diskUsage(p)
            } else {
                var st = stat()
                if stat(p, &st) == 0 { total += Int(st.st_size) }
            }
        }
        return total
    }
}

extension Mutation {
    /// A batch submitted to the commit queue; `freeze` asks the leader to freeze the memtable afterwards.
    package struct Batch: Sendable {
        package var mutations: [Mutation]
        package var freeze = false
        /// Set for a batch whose mutations are decided by the commit leader, when its turn comes.
        package var resolver: Resolver?
        package init(mutations: [Mutation], freeze: Bool = false) {
            self.mutations = mutations
            self.freeze = freeze
        }
        package init(resolvingWith resolver: Resolver) {
            self.mutations = []
            self.resolver = resolver
        }
    }

    /// Computes a batch's mutations on the commit leader's thread, while the submitter waits for it.
    package final class Resolver: @unchecked Sendable {  // called once, by the leader, while its owner waits
        let body: () throws(SextantError) -> [Mutation]
        package init(_ body: @escaping () throws(SextantError) -> [Mutation]) { self.body = body }
    }
}

package func compareKeyArrays(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { x in b.withUnsafeBytes { y in compareKeys(x, y) } }
}

extension Array {
    subscript(safe i: Int) -> Element? { i < count ? self[i] : nil }
}
