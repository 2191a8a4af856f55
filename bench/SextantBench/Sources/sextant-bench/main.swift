// sextant-bench — measures Sextant from inside one process, so the figures hold no process start-up,
// argument parsing or output formatting. Every subcommand prints one JSON object on stdout.
//
//   sextant-bench open DB COLLECTION [--query Q.npy] [--row 0]
//       Wall time of Database.open, collection(), count(), then of the first and second exact query.
//   sextant-bench search DB COLLECTION QUERIES.npy [--k 10] [--repeat 3] [--warmup 5] [--out HITS.jsonl]
//                                                 [--max-queries N]
//       Single-threaded exact search, one query at a time (VectorCollection.search, never the batch API),
//       over all queries, `repeat` times; QPS is the median pass. --out writes one JSON line per query
//       {"ids": [...], "scores": [...]} from the first pass, for the recall check.
//   sextant-bench build DB COLLECTION VECTORS.npy --metric M [--m 16] [--efc 200] [--threads 2] ...
//   sextant-bench ann DB COLLECTION QUERIES.npy [--ef-sweep 10,16,32,64,128,256] [--out HITS_%d.jsonl] ...
//       The HNSW benchmark (ANN.swift; left out with SEXTANT_BENCH_HNSW=0, see Package.swift).
//   sextant-bench filtered DB COLLECTION QUERIES.npy --filters FILTERS.jsonl [--k 10] [--ef 64] [--out HITS.jsonl] ...
//   sextant-bench text DB COLLECTION QUERIES.txt [--k 10] [--out HITS.jsonl] ...
//       Filtered vector search (with the planner's choices) and BM25 full-text search (Query.swift).
//   sextant-bench features
//       {"hnsw": true|false}: whether build/ann were compiled in.
//
// Benchmarks are not tests: this program reports, it never judges.

import Foundation
import Sextant

#if canImport(Glibc)
import Glibc
#endif

// MARK: Helpers

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func die(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("sextant-bench: " + message + "\n").utf8))
    exit(2)
}

let usageText = """
    usage:
      sextant-bench open DB COLLECTION [--query Q.npy] [--row 0]
      sextant-bench search DB COLLECTION QUERIES.npy [--k 10] [--repeat 3] [--warmup 5] [--out HITS.jsonl] [--max-queries N]
      sextant-bench build DB COLLECTION VECTORS.npy --metric cosine|euclidean|dot [--m 16] [--efc 200] [--threads 2] [--batch 10000] [--memtable-mb N] [--poll-ms 100]
      sextant-bench ann DB COLLECTION QUERIES.npy [--ef-sweep 10,16,32,64,128,256] [--k 10] [--repeat 3] [--min-time 0.5] [--warmup 5] [--out HITS_%d.jsonl] [--max-queries N]
      sextant-bench filtered DB COLLECTION QUERIES.npy --filters FILTERS.jsonl [--k 10] [--ef 64] [--repeat 3] [--min-time 0.5] [--warmup 5] [--out HITS.jsonl] [--max-queries N] [--exact 0|1]
      sextant-bench text DB COLLECTION QUERIES.txt [--k 10] [--repeat 3] [--min-time 0.5] [--warmup 5] [--out HITS.jsonl] [--max-queries N]
      sextant-bench features
    """

func usage(exitCode: Int32 = 2) -> Never {
    if exitCode == 0 {
        print(usageText)
        exit(0)
    }
    die(usageText)
}

/// Splits arguments into positionals and `--name value` options.
struct Arguments {
    var positional: [String] = []
    var options: [String: String] = [:]

    init(_ args: ArraySlice<String>, known: Set<String>) {
        var i = args.startIndex
        while i < args.endIndex {
            let a = args[i]
            if a.hasPrefix("--") {
                let name = String(a.dropFirst(2))
                guard known.contains(name) else { die("unknown option \(a)") }
                guard i + 1 < args.endIndex else { die("option \(a) needs a value") }
                options[name] = args[i + 1]
                i += 2
            } else {
                positional.append(a)
                i += 1
            }
        }
    }

    func int(_ name: String, _ fallback: Int) -> Int {
        guard let text = options[name] else { return fallback }
        guard let v = Int(text), v >= 0 else { die("--\(name) must be a non-negative integer, not '\(text)'") }
        return v
    }
}

func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    let rank = min(s.count - 1, max(0, Int((p / 100 * Double(s.count)).rounded(.up)) - 1))
    return s[rank]
}

/// A JSON number with a fixed number of decimals (JSON has no NaN: those become null).
func num(_ x: Double, _ decimals: Int = 3) -> String {
    x.isFinite ? String(format: "%.\(decimals)f", x) : "null"
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

func jsonID(_ id: RecordID) -> String {
    switch id {
    case .int(let v): return String(v)
    case .string(let s): return jsonString(s)
    }
}

func loadQueries(_ path: String, max: Int?) -> [[Float]] {
    do {
        let npy = try NPYFile(path: path)
        let n = Swift.min(npy.rows, max ?? npy.rows)
        return (0..<n).map { npy.row($0) }
    } catch {
        die("\(path): \(error.message)")
    }
}

func openCollection(_ dbPath: String, _ name: String) -> (Database, VectorCollection) {
    do {
        let db = try Database.open(at: dbPath)
        return (db, try db.collection(name))
    } catch {
        die(error.message)
    }
}

// MARK: open

func runOpen(_ args: ArraySlice<String>) {
    let a = Arguments(args, known: ["query", "row"])
    guard a.positional.count == 2 else { usage() }
    let (dbPath, name) = (a.positional[0], a.positional[1])

    let t0 = now()
    let db: Database
    do { db = try Database.open(at: dbPath) } catch { die(error.message) }
    let t1 = now()
    let c: VectorCollection
    do { c = try db.collection(name) } catch { die(error.message) }
    let t2 = now()
    let count: Int
    do { count = try c.count() } catch { die(error.message) }
    let t3 = now()

    // The query: a row of --query, else a fixed pseudo-random vector (never all zeros).
    let query: [Float]
    if let qpath = a.options["query"] {
        let qs = loadQueries(qpath, max: nil)
        let row = a.int("row", 0)
        guard row < qs.count else { die("--row \(row) is past the \(qs.count) queries of \(qpath)") }
        query = qs[row]
    } else {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        query = (0..<c.dimension).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000 + 0.001
        }
    }
    let t4 = now()
    let first: [SearchHit]
    do { first = try c.search(query, limit: 10) } catch { die(error.message) }
    let t5 = now()
    do { _ = try c.search(query, limit: 10) } catch { die(error.message) }
    let t6 = now()
    db.close()
    let t7 = now()

    print("""
        {"open_ms":\(num((t1 - t0) * 1000)),"collection_ms":\(num((t2 - t1) * 1000)),\
        "count_ms":\(num((t3 - t2) * 1000)),"open_total_ms":\(num((t3 - t0) * 1000)),"count":\(count),\
        "first_query_ms":\(num((t5 - t4) * 1000)),"second_query_ms":\(num((t6 - t5) * 1000)),\
        "open_plus_first_query_ms":\(num((t3 - t0 + t5 - t4) * 1000)),"close_ms":\(num((t7 - t6) * 1000)),\
        "first_hit":\(first.first.map { jsonID($0.id) } ?? "null")}
        """)
}

// MARK: search

func runSearch(_ args: ArraySlice<String>) {
    let a = Arguments(args, known: ["k", "repeat", "warmup", "out", "max-queries"])
    guard a.positional.count == 3 else { usage() }
    let (dbPath, name, queriesPath) = (a.positional[0], a.positional[1], a.positional[2])
    let k = a.int("k", 10)
    let repeats = max(1, a.int("repeat", 3))
    let warmup = a.int("warmup", 5)
    let maxQueries = a.options["max-queries"].map { _ in a.int("max-queries", 0) }
    guard k > 0 else { die("--k must be positive") }

    let queries = loadQueries(queriesPath, max: maxQueries)
    guard !queries.isEmpty else { die("\(queriesPath) holds no queries") }
    let (db, c) = openCollection(dbPath, name)
    let count: Int
    do { count = try c.count() } catch { die(error.message) }

    // Warm-up: the first queries map the segments and verify their checksums; not timed.
    for i in 0..<min(warmup, queries.count) {
        do { _ = try c.search(queries[i], limit: k) } catch { die(error.message) }
    }

    var passSeconds: [Double] = []
    var latencies: [Double] = []
    latencies.reserveCapacity(repeats * queries.count)
    var firstPass: [[SearchHit]] = []
    firstPass.reserveCapacity(queries.count)
    for pass in 0..<repeats {
        let start = now()
        for q in queries {
            let t = now()
            let hits: [SearchHit]
            do { hits = try c.search(q, limit: k) } catch { die(error.message) }
            latencies.append(now() - t)
            if pass == 0 { firstPass.append(hits) }
        }
        passSeconds.append(now() - start)
    }
    db.close()

    if let out = a.options["out"] {
        var text = ""
        text.reserveCapacity(queries.count * k * 24)
        for hits in firstPass {
            text += "{\"ids\":[" + hits.map { jsonID($0.id) }.joined(separator: ",") + "],\"scores\":["
            text += hits.map { String($0.score) }.joined(separator: ",") + "]}\n"
        }
        do { try text.write(toFile: out, atomically: true, encoding: .utf8) } catch { die("\(out): \(error)") }
    }

    let qpsRuns = passSeconds.map { Double(queries.count) / $0 }
    print("""
        {"queries":\(queries.count),"k":\(k),"repeat":\(repeats),"count":\(count),"threads":1,\
        "qps":\(num(median(qpsRuns), 2)),"qps_runs":[\(qpsRuns.map { num($0, 2) }.joined(separator: ","))],\
        "mean_ms":\(num(latencies.reduce(0, +) / Double(latencies.count) * 1000, 4)),\
        "p50_ms":\(num(percentile(latencies, 50) * 1000, 4)),"p99_ms":\(num(percentile(latencies, 99) * 1000, 4))}
        """)
}

// MARK: main

let argv = CommandLine.arguments
guard argv.count >= 2 else { usage() }
switch argv[1] {
case "open": runOpen(argv[2...])
case "search": runSearch(argv[2...])
case "filtered": runFiltered(argv[2...])
case "text": runText(argv[2...])
case "build", "ann":
    #if SEXTANT_HNSW
    if argv[1] == "build" { runBuild(argv[2...]) } else { runANN(argv[2...]) }
    #else
    die("'\(argv[1])' needs the HNSW API: this binary was built with SEXTANT_BENCH_HNSW=0")
    #endif
case "features":
    #if SEXTANT_HNSW
    print("{\"hnsw\":true}")
    #else
    print("{\"hnsw\":false}")
    #endif
case "-h", "--help", "help": usage(exitCode: 0)
default: die("unknown subcommand '\(argv[1])'")
}
