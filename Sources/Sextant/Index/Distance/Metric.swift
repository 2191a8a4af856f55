// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// How vectors are compared.
///
/// Cosine and dot scores are similarities (higher is better); euclidean and manhattan scores are
/// distances (lower is better).
public enum Metric: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Cosine similarity, in [-1, 1]. Stored vectors keep their original values; norms are precomputed.
    case cosine
    /// Inner product.
    case dot
    /// Euclidean (L2) distance.
    case euclidean
    /// Manhattan (L1) distance.
    case manhattan

    public var description: String { rawValue }

    /// Whether a larger score is a better match.
    public var higherIsBetter: Bool { self == .cosine || self == .dot }

    package var code: UInt8 {
        switch self {
        case .cosine: return 1
        case .dot: return 2
        case .euclidean: return 3
        case .manhattan: return 4
        }
    }

    package init?(code: UInt8) {
        switch code {
        case 1: self = .cosine
        case 2: self = .dot
        case 3: self = .euclidean
        case 4: self = .manhattan
        default: return nil
        }
    }

    /// Accepts the names users type: `cosine`, `dot` (`ip`, `inner`), `euclidean` (`l2`), `manhattan` (`l1`).
    public init?(name: String) {
        switch name.lowercased() {
        case "cosine", "cos": self = .cosine
        case "dot", "ip", "inner", "inner_product": self = .dot
        case "euclidean", "euclid", "l2": self = .euclidean
        case "manhattan", "l1": self = .manhattan
        default: return nil
        }
    }
}
