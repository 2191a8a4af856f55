// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Dispatch
import Foundation

/// Writes records straight into sealed segments of a collection nothing else writes to — a restore's
/// hidden collection — with no memtable, no log and no end-of-load merge: each segment is filled to
/// `Configuration.maxSegmentBytes` of vectors, then sealed (sorted keys, fsync, payload index, publish into
/// the hidden collection) on a second thread while the next one fills. At most one segment fills and one
/// seals at a time, so memory is two segments' per-row bookkeeping plus one payload index build.
///
/// Ids must be unique: a repeat within a segment, or of an id an earlier segment holds, fails the seal.
final class SegmentLoader: @unchecked Sendable {  // one caller thread; `sealResult` is written by the sealing thread and read after `sealing.wait()`
    let collection: VectorCollection
    /// Prefixes errors found while sealing (the source being loaded).
    private let context: String
    private let rowsPerSegment: Int
    private var builder: SegmentBuilder?
    private var sealed: [Segment] = []
    private let sealer = DispatchQueue(label: "sextant.loader.seal")
    private let sealing = DispatchGroup()
    private var sealResult: Result<Segment, SextantError>?
    private var ended = false
    private(set) var rows = 0

    init(_ collection: VectorCollection, context: String) {
        self.collection = collection
        self.context = context
        rowsPerSegment = max(1, collection.databaseConfiguration.maxSegmentBytes / (collection.dimension * 4))
        collection.beginBulkLoad()
    }

    deinit {
        builder?.abandon()
        sealing.wait()  // a seal in flight finishes before the hidden collection is dropped
        if !ended { collection.endBulkLoad(merging: false) }
    }

    /// Validates and appends one record. `place` names it in errors (file and line); `vectorPlace`, when
    /// the vector comes from elsewhere (a `.npy` file and row), names that in errors about the vector.
    func append(
        _ id: RecordID, vector: UnsafeBufferPointer<Float>, metadata: UnsafeRawBufferPointer, document: UnsafeRawBufferPointer?,
        place: @autoclosure () -> String, vectorPlace: @autoclosure () -> String? = nil
    ) throws(SextantError) {
        let inverseNorm: Float
        do {
            try collection.validate(id, index: rows)
        } catch {
            throw SextantError(error.code, place() + ": " + error.message.replacingOccurrences(of: "record \(rows): ", with: ""))
        }
        do {
            inverseNorm = try collection.validate(id, vector: vector, index: rows)
        } catch {
            // "record N (id X): problem" → "FILE: row R (id X): problem", naming the file that holds the vector.
            let problem = error.message.replacingOccurrences(of: "record \(rows) (id \(id.quotedForMessages)): ", with: "")
            throw SextantError(error.code, "\(vectorPlace() ?? place()) (id \(id.quotedForMessages)): \(problem)")
        }
        if builder == nil { builder = try collection.makeSegmentBuilder() }
        try id.key.withBytes { (k) throws(SextantError) in
            try builder!.append(vector: vector, inverseNorm: inverseNorm, key: k, metadata: metadata, document: document)
        }
        rows += 1
        if builder!.rowCount >= rowsPerSegment { try seal() }
    }

    /// Hands the segment being filled, if any, to the sealing thread (after the previous seal ended).
    func seal() throws(SextantError) {
        guard let b = builder else { return }
        builder = nil
        do throws(SextantError) { try waitForSeal() } catch {
            b.abandon()
            throw error
        }
        let earlier = sealed
        b.keyCheck = { (key) throws(SextantError) in
            let hash = keyHash(key)
            for s in earlier where try s.find(key, hash: hash) != nil {
                throw SextantError(.corrupt, "record \(RecordID(key: key).map(\.quotedForMessages) ?? "?") appears twice")
            }
        }
        let collection = self.collection
        sealer.async(group: sealing) { [self] in
            do throws(SextantError) {
                let segment = try collection.publishBuiltSegment(b)
                sealResult = .success(segment)
            } catch {
                sealResult = .failure(error)
            }
        }
    }

    private func waitForSeal() throws(SextantError) {
        sealing.wait()
        defer { sealResult = nil }
        switch sealResult {
        case .success(let segment)?: sealed.append(segment)
        case .failure(let error)?: throw error.code == .corrupt ? SextantError(.corrupt, "\(context): \(error.message)") : error
        case nil: break
        }
    }

    /// Seals the last segment, waits for it, and ends the bulk load.
    func finish() throws(SextantError) {
        try seal()
        try waitForSeal()
        ended = true
        collection.endBulkLoad(merging: false)
    }
}
