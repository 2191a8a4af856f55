// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantKernels

/// Distances between a query and stored rows, or between two stored rows, as "lower is better" keys.
///
/// cosine: 1 − cos (from the dot kernel and the precomputed 1/‖v‖); dot: −x·y; euclidean: ‖x − y‖²;
/// manhattan: ‖x − y‖₁. The metric is switched on per call: the branch is perfectly predicted, and it
/// keeps one non-generic graph implementation for all metrics.
package struct DistanceSpace: @unchecked Sendable {  // read-only pointers into memory owned by a segment
    package let metric: Metric
    package let dimension: Int
    package let vectors: UnsafePointer<Float>
    package let inverseNorms: UnsafePointer<Float>
    private let dot: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float
    private let l2sq: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float
    private let l1: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float

    package init(metric: Metric, dimension: Int, vectors: UnsafePointer<Float>, inverseNorms: UnsafePointer<Float>) {
        self.metric = metric
        self.dimension = dimension
        self.vectors = vectors
        self.inverseNorms = inverseNorms
        let k = sx_kernels_best()!.pointee
        dot = k.dot
        l2sq = k.l2sq
        l1 = k.l1
    }

    @inline(__always)
    package func vector(_ row: Int) -> UnsafePointer<Float> { vectors + row * dimension }

    /// Distance from a query (with its own 1/‖q‖) to row `row`.
    @inline(__always)
    package func distance(_ q: UnsafePointer<Float>, _ qInverseNorm: Float, _ row: Int) -> Float {
        let x = vectors + row * dimension
        switch metric {
        case .cosine: return 1 - dot(q, x, dimension) * qInverseNorm * inverseNorms[row]
        case .dot: return -dot(q, x, dimension)
        case .euclidean: return l2sq(q, x, dimension)
        case .manhattan: return l1(q, x, dimension)
        }
    }

    /// Distance between two stored rows.
    @inline(__always)
    package func distance(_ a: Int, _ b: Int) -> Float {
        distance(vectors + a * dimension, inverseNorms[a], b)
    }

    /// Distances from a query to `n` rows picked by index, into `out` (prefetching ahead; see gather.c).
    @inline(__always)
    package func distances(
        _ q: UnsafePointer<Float>, _ qInverseNorm: Float, _ ids: UnsafePointer<UInt32>, _ n: Int, _ out: UnsafeMutablePointer<Float>
    ) {
        switch metric {
        case .cosine:
            sx_dot_gather(q, vectors, ids, n, dimension, out)
            for i in 0..<n { out[i] = 1 - out[i] * qInverseNorm * inverseNorms[Int(ids[i])] }
        case .dot:
            sx_dot_gather(q, vectors, ids, n, dimension, out)
            for i in 0..<n { out[i] = -out[i] }
        case .euclidean: sx_l2sq_gather(q, vectors, ids, n, dimension, out)
        case .manhattan: sx_l1_gather(q, vectors, ids, n, dimension, out)
        }
    }
}
