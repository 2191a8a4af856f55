// sextant-bench filtered / text — the query side of issue 4's benchmark (bench/run_query.sh): metadata-
// filtered vector search and BM25 full-text search, one query at a time in this one thread.
//
//   sextant-bench filtered DB COLLECTION QUERIES.npy --filters FILTERS.jsonl [--k 10] [--ef 64] [--repeat 3]
//                          [--min-time 0.5] [--warmup 5] [--out HITS.jsonl] [--max-queries N] [--exact 0|1]
//       FILTERS.jsonl holds one Qdrant filter JSON object per line, line i for query i (`null` or `{}`:
//       no filter). First an untimed pass calls `searchExplained` once per query and counts the strategy
//       the planner chose per source (graph with its beam width, exact scan, skip) and the candidates (live
//       rows passing the filter); then warm-up queries; then passes over all queries calling
//       `search(q, limit: k, filter: f, ef: ef)` (at least `repeat` passes and at least `min-time` seconds).
//       QPS is the median pass; latency percentiles are over every timed query. `--out` writes the first
//       timed pass's hits, {"ids": [...], "scores": [...]} per query. `--exact 1` passes `exact: true`
//       (every source scanned: what the planner's exact path would cost).
//   sextant-bench text DB COLLECTION QUERIES.txt [--k 10] [--repeat 3] [--min-time 0.5] [--warmup 5]
//                      [--out HITS.jsonl] [--max-queries N]
//       One text query per line; `search(text: line, limit: k)` (BM25), timed the same way.
//
// Benchmarks are not tests: this reports, it never judges.

import Foundation
import Sextant

private func readLines(_ path: String) -> [String] {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { die("\(path): \(error)") }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
    if lines.last == "" { lines.removeLast() }
    return lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
}

private func parseFilters(_ path: String, count: Int) -> [Filter?] {
    let lines = readLines(path)
    guard lines.count >= count else { die("\(path) holds \(lines.count) filters for \(count) queries") }
    return (0..<count).map { i -> Filter? in
        let line = lines[i].trimmingCharacters(in: .whitespaces)
        if line.isEmpty || line == "null" { return nil }
        do throws(SextantError) { return try Filter(json: line) } catch { die("\(path):\(i + 1): \(error.message)") }
    }
}

private func writeHits(_ passes: [[SearchHit]], to path: String, k: Int) {
    var text = ""
    text.reserveCapacity(passes.count * k * 24)
    for hits in passes {
        text += "{\"ids\":[" + hits.map { jsonID($0.id) }.joined(separator: ",") + "],\"scores\":["
        text += hits.map { String($0.score) }.joined(separator: ",") + "]}\n"
    }
    do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch { die("\(path): \(error)") }
}

/// Timed passes over `n` queries: at least `repeats` passes and `minTime` seconds (at most 50 passes).
/// `body(i)` answers query i. Returns the pass times, every query's latency and the first pass's hits.
private func timedPasses(
    _ n: Int, repeats: Int, minTime: Double, _ body: (Int) -> [SearchHit]
) -> (passes: [Double], latencies: [Double], first: [[SearchHit]]) {
    var passSeconds: [Double] = []
    var latencies: [Double] = []
    var first: [[SearchHit]] = []
    first.reserveCapacity(n)
    var total = 0.0
    while passSeconds.count < repeats || (total < minTime && passSeconds.count < 50) {
        let start = now()
        for i in 0..<n {
            let t = now()
            let hits = body(i)
            latencies.append(now() - t)
            if passSeconds.isEmpty { first.append(hits) }
        }
        passSeconds.append(now() - start)
        total += passSeconds.last!
    }
    return (passSeconds, latencies, first)
}

private func timingJSON(_ n: Int, _ passes: [Double], _ latencies: [Double]) -> String {
    let qpsRuns = passes.map { Double(n) / $0 }
    return """
        "qps":\(num(median(qpsRuns), 2)),"qps_runs":[\(qpsRuns.map { num($0, 2) }.joined(separator: ","))],\
        "passes":\(passes.count),"mean_ms":\(num(latencies.reduce(0, +) / Double(max(1, latencies.count)) * 1000, 4)),\
        "p50_ms":\(num(percentile(latencies, 50) * 1000, 4)),"p99_ms":\(num(percentile(latencies, 99) * 1000, 4))
        """
}

private func jsonObject(_ counts: [String: Int]) -> String {
    "{" + counts.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\($0.value)" }.joined(separator: ",") + "}"
}

// MARK: filtered

func runFiltered(_ args: ArraySlice<String>) {
    let a = Arguments(args, known: ["filters", "k", "ef", "repeat", "min-time", "warmup", "out", "max-queries", "exact"])
    guard a.positional.count == 3 else { usage() }
    let (dbPath, name, queriesPath) = (a.positional[0], a.positional[1], a.positional[2])
    guard let filtersPath = a.options["filters"] else { die("filtered needs --filters FILTERS.jsonl") }
    let k = a.int("k", 10), ef = a.int("ef", 64), repeats = max(1, a.int("repeat", 3)), warmup = a.int("warmup", 5)
    let minTime = Double(a.options["min-time"] ?? "0.5") ?? 0.5
    let maxQueries = a.options["max-queries"].map { _ in a.int("max-queries", 0) }
    let exact = a.int("exact", 0) != 0
    guard k > 0, ef > 0 else { die("--k and --ef must be positive") }

    let queries = loadQueries(queriesPath, max: maxQueries)
    guard !queries.isEmpty else { die("\(queriesPath) holds no queries") }
    let filters = parseFilters(filtersPath, count: queries.count)
    let (db, c) = openCollection(dbPath, name)
    let count: Int
    do { count = try c.count() } catch { die(error.message) }

    // Untimed: the plan per query. Strategy counts are per source (segment or memtable) and query; a
    // query's "route" is graph if any source used its graph, else exact if any was scanned, else skip.
    var strategies: [String: Int] = [:]
    var routes: [String: Int] = [:]
    var widths: [String: Int] = [:]
    var candidates: [Double] = []
    var explainedHits: [[SearchHit]] = []
    let tPlan = now()
    for (i, q) in queries.enumerated() {
        let result: (hits: [SearchHit], plan: [PlanStep])
        do { result = try c.searchExplained(q, limit: k, filter: filters[i], ef: ef, exact: exact) } catch { die("query \(i): \(error.message)") }
        explainedHits.append(result.hits)
        var kinds = Set<String>()
        var cand = 0
        for step in result.plan {
            let kind: String
            switch step.strategy {
            case .graph(let w):
                kind = "graph"
                widths[String(w), default: 0] += 1
            case .exact: kind = "exact"
            case .skip: kind = "skip"
            }
            let source: String
            switch step.source {
            case .segment: source = "segment"
            case .memtable: source = "memtable"
            }
            strategies["\(source):\(kind)", default: 0] += 1
            kinds.insert(kind)
            cand += step.candidates
        }
        routes[kinds.contains("graph") ? "graph" : kinds.contains("exact") ? "exact" : "skip", default: 0] += 1
        candidates.append(Double(cand))
    }
    let planSeconds = now() - tPlan

    for i in 0..<min(warmup, queries.count) {
        do { _ = try c.search(queries[i], limit: k, filter: filters[i], ef: ef, exact: exact) } catch { die(error.message) }
    }
    let (passes, latencies, first) = timedPasses(queries.count, repeats: repeats, minTime: minTime) { i in
        do throws(SextantError) { return try c.search(queries[i], limit: k, filter: filters[i], ef: ef, exact: exact) } catch { die("query \(i): \(error.message)") }
    }
    db.close()
    // The explained pass and the timed one must agree (same plan, same data): a cheap consistency check.
    var differing = 0
    for (x, y) in zip(explainedHits, first) where x.map(\.id) != y.map(\.id) { differing += 1 }
    if let out = a.options["out"] { writeHits(first, to: out, k: k) }

    let filtered = filters.filter { $0 != nil }.count
    print("""
        {"queries":\(queries.count),"filtered_queries":\(filtered),"k":\(k),"ef":\(ef),"exact":\(exact),"count":\(count),"threads":1,\
        \(timingJSON(queries.count, passes, latencies)),\
        "plan_strategies":\(jsonObject(strategies)),"plan_routes":\(jsonObject(routes)),"plan_graph_widths":\(jsonObject(widths)),\
        "candidates_mean":\(num(candidates.reduce(0, +) / Double(candidates.count), 1)),\
        "candidates_min":\(num(candidates.min() ?? .nan, 0)),"candidates_max":\(num(candidates.max() ?? .nan, 0)),\
        "explained_pass_s":\(num(planSeconds, 4)),"explained_vs_timed_differ":\(differing),\
        "short_results":\(first.filter { $0.count < k }.count)}
        """)
}

// MARK: text

func runText(_ args: ArraySlice<String>) {
    let a = Arguments(args, known: ["k", "repeat", "min-time", "warmup", "out", "max-queries"])
    guard a.positional.count == 3 else { usage() }
    let (dbPath, name, queriesPath) = (a.positional[0], a.positional[1], a.positional[2])
    let k = a.int("k", 10), repeats = max(1, a.int("repeat", 3)), warmup = a.int("warmup", 5)
    let minTime = Double(a.options["min-time"] ?? "0.5") ?? 0.5
    guard k > 0 else { die("--k must be positive") }
    var queries = readLines(queriesPath)
    if a.options["max-queries"] != nil { queries = Array(queries.prefix(a.int("max-queries", 0))) }
    guard !queries.isEmpty else { die("\(queriesPath) holds no queries") }
    let (db, c) = openCollection(dbPath, name)
    let count: Int
    do { count = try c.count() } catch { die(error.message) }

    let t0 = now()
    do { _ = try c.search(text: queries[0], limit: k) } catch { die(error.message) }
    let firstQuery = now() - t0
    for i in 0..<min(warmup, queries.count) {
        do { _ = try c.search(text: queries[i], limit: k) } catch { die(error.message) }
    }
    let (passes, latencies, first) = timedPasses(queries.count, repeats: repeats, minTime: minTime) { i in
        do throws(SextantError) { return try c.search(text: queries[i], limit: k) } catch { die("query \(i): \(error.message)") }
    }
    db.close()
    if let out = a.options["out"] { writeHits(first, to: out, k: k) }
    print("""
        {"queries":\(queries.count),"k":\(k),"count":\(count),"threads":1,\
        \(timingJSON(queries.count, passes, latencies)),"first_query_ms":\(num(firstQuery * 1000, 3)),\
        "empty_results":\(first.filter(\.isEmpty).count),"short_results":\(first.filter { $0.count < k }.count)}
        """)
}
