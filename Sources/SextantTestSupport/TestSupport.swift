// Sextant — an embedded vector database. Licensed under Apache-2.0.

@_exported import Sextant
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SplitMix64: a tiny, seeded, replayable generator for tests.
public struct RepeatableRandomNumberGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Standard normal (Box–Muller).
    public mutating func gaussian() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}

/// Seeded random vectors.
public func randomVectors(_ n: Int, dimension: Int, seed: UInt64) -> [[Float]] {
    var rng = RepeatableRandomNumberGenerator(seed: seed)
    return (0..<n).map { _ in (0..<dimension).map { _ in rng.gaussian() } }
}

/// A fresh temporary directory, removed by `cleanup()`.
public struct TemporaryDirectory: Sendable {
    public let path: String
    public init(_ label: String = "sextant-test") {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/\(label)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }
    public func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    public func sub(_ name: String) -> String { path + "/" + name }
}

/// Brute-force scores for the oracle, computed in Double.
public func bruteForceScore(_ metric: Metric, _ q: [Float], _ x: [Float]) -> Double {
    switch metric {
    case .dot: return zip(q, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    case .cosine:
        let dot = zip(q, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let nq = q.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let nx = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return dot / (nq * nx)
    case .euclidean: return zip(q, x).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) }.squareRoot()
    case .manhattan: return zip(q, x).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) }
    }
}

/// The exact top-k (id, score) by brute force, best first.
public func bruteForceTopK(_ metric: Metric, query: [Float], records: [(RecordID, [Float])], k: Int) -> [(RecordID, Double)] {
    let scored = records.map { ($0.0, bruteForceScore(metric, query, $0.1)) }
    let sorted = scored.sorted { metric.higherIsBetter ? $0.1 > $1.1 : $0.1 < $1.1 }
    return Array(sorted.prefix(k))
}

/// Checks that `hits` are a correct top-k against the oracle, tolerating ties and float rounding:
/// each hit's true score must be at least as good as the k-th true score (within `tolerance`), scores
/// must match the true scores, and the count must be min(k, n).
public func topKMatchesOracle(
    _ hits: [SearchHit], oracle: [(RecordID, Double)], truth: [RecordID: Double], metric: Metric, tolerance: Double = 1e-4
) -> String? {
    guard hits.count == oracle.count else { return "expected \(oracle.count) hits, got \(hits.count)" }
    guard let kth = oracle.last?.1 else { return nil }
    for h in hits {
        guard let t = truth[h.id] else { return "hit \(h.id) is not a live record" }
        if abs(Double(h.score) - t) > tolerance * max(1, abs(t)) { return "hit \(h.id): score \(h.score), true \(t)" }
        let good = metric.higherIsBetter ? t >= kth - tolerance * max(1, abs(kth)) : t <= kth + tolerance * max(1, abs(kth))
        if !good { return "hit \(h.id) (true score \(t)) is worse than the k-th true score \(kth)" }
    }
    if Set(hits.map(\.id)).count != hits.count { return "duplicate ids in hits" }
    return nil
}

/// Reads a little-endian `.npy` file of float32 or int32 (C order) for tests.
public func loadNPY(_ path: String) throws -> (shape: [Int], data: Data) {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    let headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
    let header = String(decoding: bytes[10..<(10 + headerLen)], as: UTF8.self)
    let shapeText = header.components(separatedBy: "'shape': (")[1].components(separatedBy: ")")[0]
    let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    return (shape, bytes.subdata(in: (10 + headerLen)..<bytes.count))
}

public func loadFloatMatrix(_ path: String) throws -> [[Float]] {
    let (shape, data) = try loadNPY(path)
    let n = shape[0], d = shape.count > 1 ? shape[1] : 1
    return data.withUnsafeBytes { raw in
        let f = raw.bindMemory(to: Float.self)
        return (0..<n).map { i in Array(f[(i * d)..<((i + 1) * d)]) }
    }
}

/// The shared dataset directory (../shared/data/debian-minilm-20k relative to the package root).
public func sharedDatasetPath(file: String = #filePath) -> String? {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<8 {
        url.deleteLastPathComponent()
        let candidate = url.appendingPathComponent("../shared/data/debian-minilm-20k").standardized.path
        if FileManager.default.fileExists(atPath: candidate + "/base.f32.npy") { return candidate }
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { break }
    }
    return nil
}

/// Every regular file's bytes under `directory`, by relative path (`LOCK`, which holds a pid, left out): what
/// a test compares before and after an operation that must change nothing on disk.
public func fileContents(under directory: String) throws -> [String: Data] {
    var out: [String: Data] = [:]
    guard let e = FileManager.default.enumerator(atPath: directory) else { return out }
    while let rel = e.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory + "/" + rel, isDirectory: &isDir), !isDir.boolValue, rel != "LOCK" {
            out[rel] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + rel))
        }
    }
    return out
}
