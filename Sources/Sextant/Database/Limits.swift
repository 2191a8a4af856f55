// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// The bounds Sextant puts on its inputs, in one place. `Docs/FileFormat.md` ("Limits") lists them with
/// their reasons. Exceeding one is an error naming the limit (never a crash, never a silent truncation).
public enum Limits {
    /// The largest `limit + offset` of a search (vector, full-text or hybrid; each query of a batch).
    ///
    /// A search keeps its best `limit + offset` candidates in memory and walks graphs with a beam at least
    /// that wide, so the product needs a bound; 100,000 is ten times what Elasticsearch, Weaviate and
    /// Pinecone allow by default and well past a useful page. Asking for more results than there are
    /// records is not an error: memory follows the number of records, not the limit.
    public static let maxSearchResults = 100_000

    /// The widest graph beam a search accepts (aka `ef`; also the most candidates each side of a hybrid
    /// search ranks).
    public static let maxSearchWidth = 100_000

    /// The most records an import commits as one batch (`batchSize`, `--batch`).
    public static let maxImportBatchRecords = 1_000_000

    /// The largest batch, in bytes of its log record (header + payload, see ``batchRecordBytes(_:)``):
    /// 1 GiB. The log reader refuses longer records as damage, so a longer batch could never be replayed.
    public static let maxBatchBytes = 1 << 30

    /// The largest Euclidean norm ‖v‖ of a stored or query vector: 10¹⁸ (its sum of squares at most 10³⁶).
    ///
    /// Between two vectors within it, the dot product (≤ ‖a‖‖b‖ ≤ 10³⁶), the squared L2 distance
    /// (≤ (‖a‖ + ‖b‖)² ≤ 4·10³⁶) and the L1 distance (≤ √d·(‖a‖ + ‖b‖) ≤ 5.2·10²⁰) are all far below
    /// Float32's largest value (3.4·10³⁸), partial sums included, so no score is ever infinite or NaN.
    public static let maxVectorNorm: Double = 1e18

    /// The smallest norm of a vector under the cosine metric: 10⁻¹⁸. Cosine divides by the norm; below
    /// this, 1/‖v‖ leaves Float32's range (and the vector has no usable direction).
    public static let minCosineVectorNorm: Double = 1e-18

    /// The longest string id, in UTF-8 bytes (``RecordID/maxStringBytes``).
    public static let maxStringIDBytes = RecordID.maxStringBytes

    /// The most unicode scalars of user input (a name, an id, a path) an error message repeats.
    public static let maxQuotedCharacters = 200

    /// The encoded size of a batch's log record: the record header (``WALRecord/headerSize``, 25 bytes), the 4-byte operation count, and
    /// per operation `kind (1) + keyLength (2) + key`, plus for an upsert `dimension (4) + 4·dimension +
    /// metadataLength (4) + metadata + hasDocument (1) + (4 + document bytes, with a document)` — the layout
    /// of `Docs/FileFormat.md`, "Write-ahead log".
    package static func batchRecordBytes(_ mutations: [Mutation]) -> Int {
        var total = WALRecord.headerSize + 4
        for m in mutations { total += encodedBytes(m) }
        return total
    }

    /// One operation's share of ``batchRecordBytes(_:)``.
    @inline(__always)
    package static func encodedBytes(_ m: Mutation) -> Int {
        var n = 1 + 2 + m.key.count
        if m.kind == .upsert {
            n += 4 + 4 * m.vector.count + 4 + m.metadata.count + 1
            if let d = m.document { n += 4 + d.utf8.count }
        }
        return n
    }

    /// Refuses a batch whose log record would exceed ``maxBatchBytes``, before anything is written.
    /// `advice` ends the message (how the caller makes batches smaller).
    package static func checkBatchBytes(
        _ mutations: [Mutation], limit: Int = maxBatchBytes, advice: String = "split it into smaller batches"
    ) throws(SextantError) {
        let bytes = batchRecordBytes(mutations)
        if bytes > limit { throw batchTooLarge(bytes: bytes, records: mutations.count, limit: limit, advice: advice) }
    }

    /// The bound of a batch that is encoded but never logged (a restore's hidden collection): the encoder
    /// writes lengths as `u32`, so a larger batch would trap instead of failing.
    package static let maxUnloggedBatchBytes = Int(UInt32.max)

    package static func batchTooLarge(bytes: Int, records: Int, limit: Int = maxBatchBytes, advice: String) -> SextantError {
        SextantError(
            .invalidArgument,
            "a batch of \(records) records encodes to \(bytes) bytes or more; the limit is \(limit) bytes\(limit == maxBatchBytes ? " (1 GiB)" : "") per batch: \(advice)")
    }

    /// Why a vector with this sum of squares (computed in Float64) is refused, or nil if it is accepted.
    /// Values must be finite (checked separately); an all-zero vector is refused under cosine only.
    package static func normProblem(sumOfSquares s: Double, metric: Metric) -> String? {
        if s > maxVectorNorm * maxVectorNorm {
            return "its norm is \(shortDecimal(s.squareRoot())); the limit is 1e18 (so that distances stay finite in Float32)"
        }
        if metric == .cosine {
            if s == 0 { return "a zero vector has no direction under the cosine metric" }
            if s < minCosineVectorNorm * minCosineVectorNorm {
                return "its norm is \(shortDecimal(s.squareRoot())), below 1e-18, the smallest the cosine metric accepts (1/norm must be finite in Float32)"
            }
        }
        return nil
    }

    private static func shortDecimal(_ x: Double) -> String {
        x.isFinite ? String(format: "%.3g", x) : "infinite"
    }
}
