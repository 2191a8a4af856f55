// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import Sextant

/// The database's own files. Each target has a `-raw` twin that skips the checksum fix-up.
let storageTargets: [FuzzTarget] = [
    FuzzTarget(name: "wal", summary: "WAL file, checksums fixed up: WALReader.scan / replay (+ salvage), firstBatch", run: { fuzzWAL($0, fix: true) }),
    FuzzTarget(name: "wal-raw", summary: "WAL file as is", run: { fuzzWAL($0, fix: false) }),
    FuzzTarget(name: "segment", summary: "segment, checksums fixed up: open, verify, read every row, find each key", run: { fuzzSegment($0, fix: true) }),
    FuzzTarget(name: "segment-raw", summary: "segment as is", run: { fuzzSegment($0, fix: false) }),
    FuzzTarget(name: "manifest", summary: "manifest JSON framed with a valid crc: decode, inconsistencies(), round trip, read-only open", run: { fuzzManifest($0, frame: true) }),
    FuzzTarget(name: "manifest-raw", summary: "manifest file as is", run: { fuzzManifest($0, frame: false) }),
    FuzzTarget(name: "deletion", summary: "deletion file, crc fixed up", run: { fuzzDeletion($0, fix: true) }),
    FuzzTarget(name: "deletion-raw", summary: "deletion file as is", run: { fuzzDeletion($0, fix: false) }),
    FuzzTarget(name: "pidx", summary: "payload index file, crc fixed up: open, verify, walk every term's postings", run: { fuzzPayloadIndex($0, fix: true) }),
    FuzzTarget(name: "pidx-raw", summary: "payload index file as is", run: { fuzzPayloadIndex($0, fix: false) }),
    FuzzTarget(name: "hnsw", summary: "graph file, checksums fixed up: load, verify, search over it", run: { fuzzGraph($0, fix: true) }),
    FuzzTarget(name: "hnsw-raw", summary: "graph file as is", run: { fuzzGraph($0, fix: false) }),
    FuzzTarget(name: "q8", summary: "int8 codes, checksums fixed up: load, verify, quantized search (scores)", run: { fuzzQuantized($0, fix: true) }),
    FuzzTarget(name: "q8-raw", summary: "int8 codes as is", run: { fuzzQuantized($0, fix: false) }),
]

/// Limits that keep one input well under the 10 s timeout and the RSS limit; larger claims are skipped.
let maxRows = 1 << 16

func fixed(_ data: UnsafeRawBufferPointer, _ fix: Bool, _ fixup: (inout [UInt8]) -> Void) -> [UInt8] {
    var b = Array(data)
    if fix { fixup(&b) }
    return b
}

func fuzzWAL(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.wal)
    bytes.withUnsafeBytes { map in
        for (last, salvage) in [(true, false), (false, false), (true, true)] {
            // (Consecutive sequence numbers are checked by recovery, above the reader: not an invariant here.)
            _ = try? WALReader.replay(map, path: "input.log", fileNumber: nil, isLastFile: last, previousSeq: 0, tolerateDamage: true, salvage: salvage) {
                _, mutations in
                _ = mutations.count
            }
        }
        if let scan = try? WALReader.scan(map, path: "input.log", fileNumber: nil, isLastFile: true, previousSeq: 0) {
            if !scan.records.isEmpty { FuzzProgress.parsed() }
            check(scan.validEnd <= map.count, "validEnd \(scan.validEnd) past the end (\(map.count))")
            for r in scan.records { check(r.offset < r.end && r.end <= map.count, "record \(r.offset)..<\(r.end) out of bounds") }
        }
    }
    let path = Scratch.file("input.log", bytes)
    _ = WALReader.firstBatch(after: 0, io: Scratch.io, path: path, fileNumber: bytes.count >= 24 ? bytes.u64(at: 16) : 0)
}

func fuzzSegment(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.segment)
    guard bytes.count >= 64 else { return }
    let path = Scratch.file("input.seg", bytes)
    guard let segment = try? Segment(io: Scratch.io, path: path, expectedID: bytes.u64(at: 32)) else { return }
    guard (try? segment.verifyAll()) != nil, segment.rowCount <= maxRows, segment.dimension <= 4096 else { return }
    FuzzProgress.parsed()
    _ = try? segment.vectors()
    _ = try? segment.inverseNorms()
    for row in 0..<segment.rowCount {
        guard let key = try? segment.key(row) else { continue }
        _ = try? segment.recordID(row)
        if let m = try? segment.metadata(row), !m.isEmpty { _ = try? JSONParser.parse(m) }
        _ = try? segment.document(row)
        _ = try? segment.orderedRow(row)
        _ = try? segment.find(key, hash: keyHash(key))
    }
    if let base = try? segment.vectors(), let norms = try? segment.inverseNorms(), segment.rowCount > 0, segment.dimension > 0 {
        let space = DistanceSpace(metric: segment.metric, dimension: segment.dimension, vectors: base, inverseNorms: norms)
        for row in 0..<min(segment.rowCount, 64) { _ = space.distance(space.vector(0), norms[0], row) }
    }
}

func fuzzManifest(_ data: UnsafeRawBufferPointer, frame: Bool) {
    let bytes = frame ? Fixup.manifest(json: data) : Array(data)
    guard let m = try? Manifest.decode(bytes, path: "MANIFEST") else { return }
    FuzzProgress.parsed()
    _ = m.inconsistencies()
    if let again = try? Manifest.decode(m.encoded(), path: "MANIFEST") {
        check(again == m, "manifest encode/decode round trip changed it")
    }
    // What an open makes of it: consistency checks, then each collection (whose files are missing).
    let dir = Scratch.directory("manifest-db")
    _ = Scratch.file("manifest-db/CURRENT", Array((Manifest.fileName(m.generation) + "\n").utf8))
    _ = Scratch.file("manifest-db/" + Manifest.fileName(m.generation), bytes)
    var config = Configuration()
    config.readOnly = true
    config.backgroundWork = false
    config.fileIO = Scratch.io
    if let db = try? Database.open(at: dir, configuration: config) {
        for name in db.collectionNames() { _ = try? db.collection(name) }
        _ = db.unavailableCollections()
        db.close()
    }
}

func fuzzDeletion(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.trailing)
    guard bytes.count >= 36 else { return }
    let rows = bytes.u64(at: 24)
    guard rows <= UInt64(maxRows) * 64 else { return }
    guard let bitmap = try? DeletionFile.decode(bytes, path: "input.del", segmentID: bytes.u64(at: 16), rowCount: Int(rows)) else { return }
    FuzzProgress.parsed()
    var n = 0
    bitmap.forEachSet { row in
        check(row < Int(rows), "deleted row \(row) of \(rows)")
        n += 1
    }
    check(n == bitmap.setCount, "setCount \(bitmap.setCount), \(n) set")
}

func fuzzPayloadIndex(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.trailing)
    guard bytes.count >= 36 else { return }
    let rows = bytes.u64(at: 20)
    guard rows <= UInt64(maxRows) else { return }
    let path = Scratch.file("input.pidx", bytes)
    guard let index = try? PayloadIndexReader(io: Scratch.io, path: path, segmentID: bytes.u64(at: 12), rowCount: Int(rows)),
        (try? index.verify()) != nil
    else { return }
    FuzzProgress.parsed()
    // What a filtered or full-text search reads: each term's postings, their rows, tfs and document lengths.
    for (key, _) in index.fields {
        guard let p = index.postings(key) else { _ = index.numeric(key); continue }
        for word in ["a", "true", "false", "the", "x"] { _ = p.find(word) }
        for i in 0..<min(p.count, maxRows) {
            for j in p.range(ofTermAt: i).prefix(1024) {
                if let r = p.rows {
                    let row = Int(r[j])
                    if let lengths = p.docLengths, row < Int(rows) { _ = lengths[row] }
                }
                if let tfs = p.tfs { _ = tfs[j] }
            }
        }
    }
}

/// Deterministic vectors for the rows a graph or codes file claims (those files hold no vectors).
final class SyntheticVectors {
    let dimension: Int
    let count: Int
    let vectors: UnsafeMutablePointer<Float>
    let inverseNorms: UnsafeMutablePointer<Float>

    init(count: Int, dimension: Int) {
        self.count = count
        self.dimension = dimension
        vectors = .allocate(capacity: max(1, count * dimension))
        inverseNorms = .allocate(capacity: max(1, count))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<(count * dimension) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            vectors[i] = Float(Int32(truncatingIfNeeded: state >> 33)) / Float(Int32.max)
        }
        for r in 0..<count {
            var s: Float = 0
            for j in 0..<dimension { s += vectors[r * dimension + j] * vectors[r * dimension + j] }
            inverseNorms[r] = s > 0 ? 1 / s.squareRoot() : 0
        }
    }

    deinit {
        vectors.deallocate()
        inverseNorms.deallocate()
    }

    func space(_ metric: Metric) -> DistanceSpace {
        DistanceSpace(metric: metric, dimension: dimension, vectors: vectors, inverseNorms: inverseNorms)
    }

    nonisolated(unsafe) private static var cache: [Int: SyntheticVectors] = [:]
    static func shared(count: Int, dimension: Int) -> SyntheticVectors {
        let key = count << 20 | dimension
        if let v = cache[key] { return v }
        if cache.count > 64 { cache.removeAll() }
        let v = SyntheticVectors(count: count, dimension: dimension)
        cache[key] = v
        return v
    }
}

func fuzzGraph(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.graph)
    guard bytes.count >= 64 else { return }
    let rows = bytes.u64(at: 24)
    guard rows <= UInt64(maxRows) else { return }
    let path = Scratch.file("input.hnsw", bytes)
    guard let (graph, file) = try? HNSWFile.load(io: Scratch.io, path: path, segmentID: bytes.u64(at: 48), rowCount: Int(rows)),
        (try? file.verify()) != nil
    else { return }
    FuzzProgress.parsed()
    // As a search uses a loaded graph: its links are followed from the entry point.
    let vectors = SyntheticVectors.shared(count: graph.count, dimension: 4)
    let space = vectors.space(.euclidean)
    let query: [Float] = [0.25, -0.5, 0.75, 0.125]
    for ef in [1, 16] {
        var top = TopK(k: 4)
        query.withUnsafeBufferPointer { q in
            graph.search(q.baseAddress!, qInverseNorm: 1, ef: ef, space: space, allow: nil, into: &top, tag: 0)
        }
        for hit in top.sorted() { check(Int(hit.payload) < graph.count, "search returned row \(hit.payload) of \(graph.count)") }
    }
}

func fuzzQuantized(_ data: UnsafeRawBufferPointer, fix: Bool) {
    let bytes = fixed(data, fix, Fixup.quantized)
    guard bytes.count >= 80 else { return }
    let dimension = Int(bytes.u32(at: 12)), count = bytes.u64(at: 16)
    guard dimension >= 1, dimension <= 1024, count <= 512 else { return }
    let path = Scratch.file("input.q8", bytes)
    guard let codes = try? QuantizedVectors(io: Scratch.io, path: path, segmentID: bytes.u64(at: 32), count: Int(count), dimension: dimension),
        (try? codes.verify()) != nil
    else { return }
    FuzzProgress.parsed()
    // A quantized search scores rows with the codes, then rescoring with the (here synthetic) vectors.
    let vectors = SyntheticVectors.shared(count: Int(count), dimension: dimension)
    for metric in [Metric.cosine, .euclidean] {
        let space = vectors.space(metric)
        guard let graph = GraphCache.graph(count: Int(count), dimension: dimension, space: space, metric: metric) else { continue }
        var top = TopK(k: 4)
        let q = vectors.vectors
        graph.searchQuantized(q, qInverseNorm: vectors.inverseNorms[0], ef: 8, oversampling: 2, space: space, codes: codes, allow: nil, into: &top, tag: 0)
        for hit in top.sorted() { check(Int(hit.payload) < Int(count), "search returned row \(hit.payload) of \(count)") }
    }
}

/// Small graphs over the synthetic vectors, built once per shape.
enum GraphCache {
    nonisolated(unsafe) private static var graphs: [String: HNSWGraph] = [:]
    static func graph(count: Int, dimension: Int, space: DistanceSpace, metric: Metric) -> HNSWGraph? {
        guard count > 0 else { return nil }
        let key = "\(count)/\(dimension)/\(metric)"
        if let g = graphs[key] { return g }
        if graphs.count > 64 { graphs.removeAll() }
        let g = HNSWGraph.build(space: space, count: count, neighborsPerNode: 4, indexingSearchCount: 16, threads: 1)
        graphs[key] = g
        return g
    }
}
