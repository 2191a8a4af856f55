// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// How a collection's sealed segments are indexed for approximate search. Fixed when the collection is created.
public struct IndexConfiguration: Sendable, Codable, Equatable {
    /// Links per node per layer of the HNSW graph (aka `M`; layer 0 has 2·M). The default is 16.
    public var neighborsPerNode: Int
    /// Beam width while inserting into the graph (aka `efConstruction`). The default is 200.
    public var indexingSearchCount: Int
    /// Threads used to build a graph; 0 means every core, at most ``maxIndexingThreads``. The default is 0.
    public var indexingThreads: Int
    /// Segments with fewer rows are searched exactly instead of getting a graph. The default is 1,024.
    public var minimumRowsForGraph: Int
    /// Traverse graphs on int8 codes (``Quantization/int8``) or on the Float32 vectors. The default is `.none`.
    public var quantization: Quantization
    /// With int8, the beam is `ef × rescoreOversampling` wide on the codes, and every candidate it finds is
    /// rescored with the Float32 vectors. The default is 1.
    public var rescoreOversampling: Int
    /// Words left out of the documents' full-text index (BM25) and of `text` payload indexes, lowercased.
    /// The default is none; ``Tokenizer/englishStopWords`` is a ready list.
    public var stopWords: Set<String>

    public init(
        neighborsPerNode: Int = 16, indexingSearchCount: Int = 200, indexingThreads: Int = 0, minimumRowsForGraph: Int = 1024,
        quantization: Quantization = .none, rescoreOversampling: Int = 1, stopWords: Set<String> = []
    ) {
        self.stopWords = stopWords
        self.neighborsPerNode = neighborsPerNode
        self.indexingSearchCount = indexingSearchCount
        self.indexingThreads = indexingThreads
        self.minimumRowsForGraph = minimumRowsForGraph
        self.quantization = quantization
        self.rescoreOversampling = rescoreOversampling
    }

    private enum CodingKeys: String, CodingKey {
        case neighborsPerNode, indexingSearchCount, indexingThreads, minimumRowsForGraph, quantization, rescoreOversampling, stopWords
    }

    /// Fields added after the first manifests take their defaults when absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = IndexConfiguration()
        neighborsPerNode = try c.decodeIfPresent(Int.self, forKey: .neighborsPerNode) ?? d.neighborsPerNode
        indexingSearchCount = try c.decodeIfPresent(Int.self, forKey: .indexingSearchCount) ?? d.indexingSearchCount
        indexingThreads = try c.decodeIfPresent(Int.self, forKey: .indexingThreads) ?? d.indexingThreads
        minimumRowsForGraph = try c.decodeIfPresent(Int.self, forKey: .minimumRowsForGraph) ?? d.minimumRowsForGraph
        quantization = try c.decodeIfPresent(Quantization.self, forKey: .quantization) ?? d.quantization
        rescoreOversampling = try c.decodeIfPresent(Int.self, forKey: .rescoreOversampling) ?? d.rescoreOversampling
        stopWords = try c.decodeIfPresent(Set<String>.self, forKey: .stopWords) ?? d.stopWords
    }

    /// The tokenizer of the collection's full-text indexes.
    public var tokenizer: Tokenizer { Tokenizer(stopWords: stopWords) }

    /// The beam width a search uses when the caller gives none (aka `ef`). The effective width is at least
    /// the number of results asked for.
    public static let defaultSearchWidth = 64

    /// The most threads a graph build may be given (each is a real thread).
    public static let maxIndexingThreads = 1024

    package func validate() throws(SextantError) {
        guard (2...128).contains(neighborsPerNode) else {
            throw SextantError(.invalidArgument, "neighborsPerNode (M) must be between 2 and 128, not \(neighborsPerNode)")
        }
        guard (1...10_000).contains(indexingSearchCount) else {
            throw SextantError(.invalidArgument, "indexingSearchCount (efConstruction) must be between 1 and 10000, not \(indexingSearchCount)")
        }
        guard (1...64).contains(rescoreOversampling) else {
            throw SextantError(.invalidArgument, "rescoreOversampling must be between 1 and 64, not \(rescoreOversampling)")
        }
        guard (0...Self.maxIndexingThreads).contains(indexingThreads) else {
            throw SextantError(.invalidArgument, "indexingThreads must be between 0 (every core) and \(Self.maxIndexingThreads), not \(indexingThreads)")
        }
        guard minimumRowsForGraph >= 0 else {
            throw SextantError(.invalidArgument, "minimumRowsForGraph must not be negative, not \(minimumRowsForGraph)")
        }
    }
}
