// sextant-bench build / ann — the HNSW side of issue 3's benchmark (bench/run_ann.sh).
//
//   sextant-bench build DB COLLECTION VECTORS.npy --metric cosine|euclidean|dot [--m 16] [--efc 200]
//                       [--threads 2] [--batch 10000] [--memtable-mb N] [--poll-ms 100]
//       Creates the collection with IndexConfiguration(neighborsPerNode: m, indexingSearchCount: efc,
//       indexingThreads: threads), imports every row of VECTORS (ids = row index) through the library in
//       batches of `batch`, flushes, and waits until every sealed segment has its graph. Reports the wall
//       time of each phase, the process CPU time, and — from a thread polling `info()` — when the first
//       segment started building its graph and when the last one was done.
//   sextant-bench ann DB COLLECTION QUERIES.npy [--ef-sweep 10,16,32,64,128,256] [--k 10] [--repeat 3]
//                     [--min-time 0.5] [--warmup 5] [--out HITS_%d.jsonl] [--max-queries N]
//       Opens the database (timed), answers the first query with ef 64 (timed), then for each ef: warm-up
//       queries, then passes over all queries one at a time in this one thread (at least `repeat` passes
//       and at least `min-time` seconds); QPS is the median pass. `--out` with %d (replaced by the ef)
//       writes the first pass's hits.
//
// Compiled in unless the package is built with SEXTANT_BENCH_HNSW=0 in the environment (Package.swift;
// bench/run_ann.sh sets it for a library that has no `IndexConfiguration` yet).

#if SEXTANT_HNSW

import Foundation
import Sextant

#if canImport(Glibc)
import Glibc
#endif

private func cpuSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

private func parseMetric(_ text: String) -> Metric {
    switch text {
    case "cosine": return .cosine
    case "euclidean", "l2": return .euclidean
    case "dot", "ip": return .dot
    default: die("--metric must be cosine, euclidean or dot, not '\(text)'")
    }
}

private func directoryBytes(_ path: String) -> Int {
    guard let e = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total = 0
    while let f = e.nextObject() as? String {
        if let a = try? FileManager.default.attributesOfItem(atPath: path + "/" + f),
           (a[.type] as? FileAttributeType) == .typeRegular, let s = a[.size] as? NSNumber {
            total += s.intValue
        }
    }
    return total
}

private func segmentsJSON(_ info: CollectionInfo) -> String {
    "[" + info.segments.map { "{\"id\":\($0.id),\"rows\":\($0.rows),\"index\":\(jsonString($0.index))}" }.joined(separator: ",") + "]"
}

/// Polls `info()` and remembers when a segment was first seen building (or done) and when all were done.
private final class IndexingTimeline: @unchecked Sendable {
    private let lock = NSLock()
    private var firstBuildingAt: Double?
    private var firstGraphAt: Double?
    private var polls = 0
    private var stopped = false

    func start(_ c: VectorCollection, everyMilliseconds ms: Int) {
        guard ms > 0 else { return }
        let t = Thread { [self] in
            while true {
                lock.lock(); let stop = stopped; lock.unlock()
                if stop { return }
                if let info = try? c.info() {
                    let states = info.segments.map(\.index)
                    let at = now()
                    lock.lock()
                    polls += 1
                    if firstBuildingAt == nil, states.contains("building") { firstBuildingAt = at }
                    if firstGraphAt == nil, states.contains("graph") { firstGraphAt = at }
                    lock.unlock()
                }
                usleep(UInt32(ms * 1000))
            }
        }
        t.start()
    }

    func stop() -> (building: Double?, graph: Double?, polls: Int) {
        lock.lock(); defer { lock.unlock() }
        stopped = true
        return (firstBuildingAt, firstGraphAt, polls)
    }
}

func runBuild(_ args: ArraySlice<String>) {
    let a = Arguments(args, known: ["metric", "m", "efc", "threads", "batch", "memtable-mb", "poll-ms", "quantization"])
    guard a.positional.count == 3 else { usage() }
    let (dbPath, name, vectorsPath) = (a.positional[0], a.positional[1], a.positional[2])
    guard let metricText = a.options["metric"] else { die("build needs --metric") }
    let metric = parseMetric(metricText)
    let m = a.int("m", 16), efc = a.int("efc", 200), threads = a.int("threads", 2)
    let batch = max(1, a.int("batch", 10_000)), pollMs = a.int("poll-ms", 100)

    let npy: NPYFile
    do { npy = try NPYFile(path: vectorsPath) } catch { die("\(vectorsPath): \(error.message)") }
    let (rows, dim) = (npy.rows, npy.columns)

    var config = Configuration()
    if a.options["memtable-mb"] != nil { config.memtableBytes = a.int("memtable-mb", 64) << 20 }
    let cpu0 = cpuSeconds()
    let t0 = now()
    let db: Database
    do { db = try Database.open(at: dbPath, configuration: config) } catch { die(error.message) }
    let c: VectorCollection
    do {
        c = try db.createCollection(
            name, dimension: dim, metric: metric,
            index: IndexConfiguration(
                neighborsPerNode: m, indexingSearchCount: efc, indexingThreads: threads,
                quantization: a.options["quantization"] == "int8" ? .int8 : .none))
    } catch { die(error.message) }
    let timeline = IndexingTimeline()
    timeline.start(c, everyMilliseconds: pollMs)
    let t1 = now()
    let imported: Int
    do { imported = try c.importRecords(from: .npy(vectors: vectorsPath, ids: nil, records: nil), batchSize: batch) } catch {
        die("import: \(error)")
    }
    let t2 = now()
    do { try c.flush() } catch { die("flush: \(error.message)") }
    let t3 = now()
    do { try c.waitForIndexing() } catch { die("waitForIndexing: \(error.message)") }
    let t4 = now()
    let cpu4 = cpuSeconds()
    let (firstBuilding, firstGraph, polls) = timeline.stop()
    let info: CollectionInfo
    do { info = try c.info() } catch { die(error.message) }
    let count: Int
    do { count = try c.count() } catch { die(error.message) }
    db.close()
    let t5 = now()
    let firstSeen = [firstBuilding, firstGraph].compactMap { $0 }.min()
    let notGraph = info.segments.filter { $0.index != "graph" }.count

    print("""
        {"rows":\(rows),"dim":\(dim),"metric":\(jsonString(metric.rawValue)),"m":\(m),"efc":\(efc),\
        "threads":\(threads),"batch":\(batch),"imported":\(imported),"count":\(count),\
        "create_s":\(num(t1 - t0, 4)),"import_s":\(num(t2 - t1, 4)),"flush_s":\(num(t3 - t2, 4)),\
        "wait_indexing_s":\(num(t4 - t3, 4)),"build_s":\(num(t4 - t0, 4)),"close_s":\(num(t5 - t4, 4)),\
        "cpu_s":\(num(cpu4 - cpu0, 3)),\
        "first_segment_indexing_seen_s":\(firstSeen.map { num($0 - t0, 3) } ?? "null"),\
        "indexing_window_s":\(firstSeen.map { num(t4 - $0, 3) } ?? "null"),"polls":\(polls),\
        "segments":\(segmentsJSON(info)),"segments_not_graph":\(notGraph),\
        "memtable_rows":\(info.memtableRows),"bytes_on_disk":\(directoryBytes(dbPath))}
        """)
}

func runANN(_ args: ArraySlice<String>) {
    let a = Arguments(args, known: ["ef-sweep", "k", "repeat", "min-time", "warmup", "out", "max-queries"])
    guard a.positional.count == 3 else { usage() }
    let (dbPath, name, queriesPath) = (a.positional[0], a.positional[1], a.positional[2])
    let k = a.int("k", 10), repeats = max(1, a.int("repeat", 3)), warmup = a.int("warmup", 5)
    let minTime = Double(a.options["min-time"] ?? "0.5") ?? 0.5
    let maxQueries = a.options["max-queries"].map { _ in a.int("max-queries", 0) }
    let efs = (a.options["ef-sweep"] ?? "10,16,32,64,128,256").split(separator: ",").map { s -> Int in
        guard let v = Int(s), v > 0 else { die("--ef-sweep takes positive integers, not '\(s)'") }
        return v
    }
    let queries = loadQueries(queriesPath, max: maxQueries)
    guard !queries.isEmpty else { die("\(queriesPath) holds no queries") }

    let t0 = now()
    let db: Database
    do { db = try Database.open(at: dbPath) } catch { die(error.message) }
    let c: VectorCollection
    do { c = try db.collection(name) } catch { die(error.message) }
    let count: Int
    do { count = try c.count() } catch { die(error.message) }
    let t1 = now()
    let first: [SearchHit]
    do { first = try c.search(queries[0], limit: k, ef: 64) } catch { die(error.message) }
    let t2 = now()
    let info: CollectionInfo
    do { info = try c.info() } catch { die(error.message) }

    var perEf: [String] = []
    for ef in efs {
        for i in 0..<min(warmup, queries.count) {
            do { _ = try c.search(queries[i], limit: k, ef: ef) } catch { die(error.message) }
        }
        var passSeconds: [Double] = []
        var latencies: [Double] = []
        var firstPass: [[SearchHit]] = []
        firstPass.reserveCapacity(queries.count)
        var total = 0.0
        while passSeconds.count < repeats || (total < minTime && passSeconds.count < 50) {
            let start = now()
            for q in queries {
                let t = now()
                let hits: [SearchHit]
                do { hits = try c.search(q, limit: k, ef: ef) } catch { die(error.message) }
                latencies.append(now() - t)
                if passSeconds.isEmpty { firstPass.append(hits) }
            }
            passSeconds.append(now() - start)
            total += passSeconds.last!
        }
        if let out = a.options["out"] {
            let path = out.replacingOccurrences(of: "%d", with: String(ef))
            var text = ""
            text.reserveCapacity(queries.count * k * 24)
            for hits in firstPass {
                text += "{\"ids\":[" + hits.map { jsonID($0.id) }.joined(separator: ",") + "],\"scores\":["
                text += hits.map { String($0.score) }.joined(separator: ",") + "]}\n"
            }
            do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch { die("\(path): \(error)") }
        }
        let qpsRuns = passSeconds.map { Double(queries.count) / $0 }
        perEf.append("""
            {"ef":\(ef),"qps":\(num(median(qpsRuns), 2)),"qps_runs":[\(qpsRuns.map { num($0, 2) }.joined(separator: ","))],\
            "p50_ms":\(num(percentile(latencies, 50) * 1000, 4)),"p99_ms":\(num(percentile(latencies, 99) * 1000, 4))}
            """)
    }
    db.close()
    print("""
        {"queries":\(queries.count),"k":\(k),"count":\(count),"threads":1,\
        "open_ms":\(num((t1 - t0) * 1000)),"first_query_ms":\(num((t2 - t1) * 1000)),\
        "open_plus_first_query_ms":\(num((t2 - t0) * 1000)),"first_hit":\(first.first.map { jsonID($0.id) } ?? "null"),\
        "segments":\(segmentsJSON(info)),"memtable_rows":\(info.memtableRows),"per_ef":[\(perEf.joined(separator: ","))]}
        """)
}

#endif
