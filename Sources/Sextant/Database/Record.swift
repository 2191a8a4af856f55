// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// A stored item: an id, a Float32 vector, optional JSON metadata and optional document text.
public struct Record: Sendable, Hashable {
    public var id: RecordID
    public var vector: [Float]
    public var metadata: JSONValue?
    public var document: String?

    public init(id: RecordID, vector: [Float], metadata: JSONValue? = nil, document: String? = nil) {
        self.id = id
        self.vector = vector
        self.metadata = metadata
        self.document = document
    }
}

/// What to return with each hit or record besides the id.
public struct Include: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let metadata = Include(rawValue: 1)
    public static let document = Include(rawValue: 2)
    public static let vector = Include(rawValue: 4)
    public static let all: Include = [.metadata, .document, .vector]
}

/// One search result.
public struct SearchHit: Sendable, Hashable {
    public var id: RecordID
    /// Similarity for cosine and dot (higher is better); distance for euclidean and manhattan (lower is better).
    public var score: Float
    public var metadata: JSONValue?
    public var document: String?
    public var vector: [Float]?
    /// For a hybrid search: each side's score and rank (nil otherwise).
    public var explanation: HybridExplanation? = nil
}

/// One page of ``Collection/scroll(after:limit:include:)``.
public struct ScrollPage: Sendable {
    public var records: [StoredRecord]
    /// Pass this as `after` to get the next page; nil when there are no more records.
    public var nextAfter: RecordID?
}

/// A record as read back, with only the parts that were asked for.
public struct StoredRecord: Sendable, Hashable {
    public var id: RecordID
    public var vector: [Float]?
    public var metadata: JSONValue?
    public var document: String?
}

/// A snapshot of a collection's shape and size.
public struct CollectionInfo: Sendable, Codable {
    public struct SegmentInfo: Sendable, Codable {
        public var id: UInt64
        public var rows: Int
        public var liveRows: Int
        public var bytes: Int
        /// "graph" (HNSW built), "building", or "exact" (searched by scan: too small, or not built yet).
        public var index: String
        /// Bytes of the segment's graph file (0 without one).
        public var indexBytes: Int
        /// Bytes of the segment's payload index file (documents' postings and indexed fields; 0 without one).
        public var payloadIndexBytes: Int = 0
    }
    public var name: String
    public var dimension: Int
    public var metric: Metric
    public var count: Int
    public var segments: [SegmentInfo]
    /// Rows in the in-memory tables (active + frozen, not yet flushed).
    public var memtableRows: Int
    /// Rows in segments that have a graph.
    public var indexedRows: Int
    /// The index parameters.
    public var indexConfiguration: IndexConfiguration
    /// The metadata fields with a payload index.
    public var payloadIndexes: [PayloadIndexSpec] = []
    /// Bytes of all the collection's files (segments, deletion files, log).
    public var bytesOnDisk: Int
    /// Background flushes and compactions: whether they are failing, and when they retry.
    public var background: BackgroundStatus = BackgroundStatus()
    /// The damage a collection opened with ``Configuration/readDamagedCollections`` stops at.
    public var damage: String?
    /// Whether the collection refuses writes (a read-only open, or damage).
    public var readOnly = false
}

/// The state of a collection's background work (flushes, payload index builds, compactions).
///
/// After a failure (a full disk, an I/O error) what the attempt wrote is removed at once and the work is
/// retried later — after 0.5 s, then twice as long each time up to a minute, and after a full disk only once
/// the file system has room for it — so a failing pass never rewrites the same files in a loop. Acknowledged
/// writes are safe in the log meanwhile; writers get the error once unflushed tables pile up.
public struct BackgroundStatus: Sendable, Codable, Hashable {
    /// The error of the last pass, nil when it succeeded (or none ran).
    public var lastError: String?
    /// Consecutive failed passes.
    public var failures = 0
    /// Seconds until the next attempt, when one is scheduled after a failure.
    public var retryInSeconds: Double?
    /// After a full disk: the free bytes the next attempt waits for.
    public var waitingForBytes: Int?
    /// Rows frozen and waiting to be flushed (they are in the log).
    public var unflushedRows = 0
    public var isFailing: Bool { lastError != nil }
}
