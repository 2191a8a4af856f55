// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// How a ``Database`` behaves. A value type: set the properties you care about and pass it to
/// ``Database/open(at:configuration:)``.
public struct Configuration: Sendable {
    /// When a write is acknowledged relative to reaching stable storage.
    public enum Durability: Sendable, Equatable {
        /// Every batch is fsynced before the write returns. Concurrent writers share one fsync (group commit).
        /// Survives power loss. The default.
        case synchronous
        /// Batches are written to the log at once (surviving a process crash) and fsynced in the background
        /// every `milliseconds`; a power loss may lose the last interval's acknowledged writes.
        case interval(milliseconds: Int)
    }

    /// The durability of acknowledged writes. The default is ``Durability/synchronous``.
    public var durability: Durability = .synchronous

    /// Vector bytes held in the in-memory table before it is frozen and flushed to a segment.
    /// The default is 64 MiB.
    public var memtableBytes: Int = 64 << 20

    /// Whether flushes and compactions run by themselves in the background. The default is `true`.
    /// With `false`, data reaches segments only through ``Collection/flush()`` and ``Collection/compact()``
    /// (the log keeps everything durable either way).
    public var backgroundWork: Bool = true

    /// Background compaction merges the smallest segments once a collection has more than this many.
    /// The default is 8.
    public var maxSegments: Int = 8

    /// Merges (background compaction, the end of an import, ``Collection/compact()``) make segments holding
    /// at most this many bytes of vectors; a segment gets one graph, so this also bounds a graph build.
    /// The default is 1 GiB (for example 2,000,000 × 128 or 350,000 × 768 float32 vectors).
    public var maxSegmentBytes: Int = 1 << 30

    /// A segment whose deleted fraction exceeds this is rewritten by background compaction. The default is 0.3.
    public var compactDeletedFraction: Double = 0.3

    /// Verify every segment section's checksum when the database opens, instead of on first use.
    /// The default is `false` (opening stays O(metadata); sections are still verified before first use).
    public var verifyChecksumsOnOpen: Bool = false

    /// Open without changing anything on disk. Recovery replays the logs in memory but cuts no torn tail and
    /// removes no leftover file; nothing runs in the background; every write (and flush, compaction, index
    /// change, collection create or drop) fails with ``SextantError/Code/readOnly``. Works on a read-only file
    /// system or directory. Read-only opens share the database with each other, not with a process that has
    /// it open for writing (that one holds its lock exclusively). The default is `false`.
    public var readOnly: Bool = false

    /// Open a collection whose files are damaged instead of leaving it unavailable: read-only, holding what
    /// can be read up to the damage (the log's records before a damaged record; the segments that load).
    /// ``VectorCollection/damage`` says what was skipped, and writes fail with ``SextantError/Code/corrupt``
    /// until `sextant repair` has salvaged the collection. The default is `false`: a damaged collection does
    /// not open, and its error names the file and offset (the other collections work either way).
    public var readDamagedCollections: Bool = false

    /// Threads used by batch search. The default is the number of active processors.
    public var searchThreads: Int = 0

    /// Repair's second pass: logs are replayed with every intact record, also those after damage (gaps in
    /// the sequence are the batches lost), and the collection opens writable.
    package var salvageDamagedLogs = false

    /// The first delay before a failed background pass is retried (it doubles each time, up to 120 times this).
    package var backgroundRetryDelay = 0.5

    /// The file system seam (tests inject faults through it).
    package var fileIO: any FileIO = PosixFileIO()

    public init() {}
}
