// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Issue 10, items 3, 4, 5 and 7 of the attack list: every bad input gets one line "error: …" on stderr and
/// exit status 1 (never a crash, a trap or an abort), and every output line is strict JSON.
@Suite struct CLIBoundsTests {
    /// Expects a clean failure: status 1, exactly one stderr line starting "error: " and holding `phrases`,
    /// no raw control character, nothing that looks like a crash report.
    func expectCleanError(_ r: CLIRunner.Output, _ phrases: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.count == 1 && r.stderr.hasPrefix("error: "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal") && !r.stderr.contains("Backtrace"), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.unicodeScalars.dropLast().contains { $0.value < 0x20 || $0.value == 0x7F }, "\(r.stderr.debugDescription)", sourceLocation: sourceLocation)
        for p in phrases { #expect(r.stderr.contains(p), "\(r.stderr) lacks \(p)", sourceLocation: sourceLocation) }
    }

    /// Parses every stdout line as strict JSON (Foundation refuses `inf`, `nan` and bare words).
    func strictJSONLines(_ r: CLIRunner.Output, sourceLocation: SourceLocation = #_sourceLocation) -> [Any] {
        r.lines.compactMap { line in
            do { return try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed]) } catch {
                Issue.record("not strict JSON: \(line)", sourceLocation: sourceLocation)
                return nil
            }
        }
    }

    @Test func limitsOffsetsEfAndBatchSizesAreBounded() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "c", "--dim", "4", "--metric", "euclidean"]).status == 0)
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 30, dimension: 4, seed: 2)
        #expect(try cli.run(["import", "c", dir.sub("in.jsonl")]).status == 0)
        try writeNPY(dir.sub("q.npy"), randomVectors(3, dimension: 4, seed: 3))
        let q = "[0.1,0.2,0.3,0.4]"
        let modes: [[String]] = [["--vector", q], ["--vector", q, "--exact"], ["--text", "doc"], ["--vector", q, "--text", "doc"], ["--queries", dir.sub("q.npy")]]
        for mode in modes {
            for bad in [["--limit", "10000000000"], ["--limit", "9223372036854775807"], ["--offset", "9223372036854775807"], ["--limit", "60000", "--offset", "40001"]] {
                expectCleanError(try cli.run(["search", "c"] + mode + bad), "limit + offset", "100000")
            }
            expectCleanError(try cli.run(["search", "c"] + mode + ["--limit", "0"]), "limit must be positive")
            expectCleanError(try cli.run(["search", "c"] + mode + ["--limit", "99999999999999999999"]), "--limit")  // does not fit an Int
            // More than the collection holds is fine: every record comes back.
            let r = try cli.run(["search", "c"] + mode + ["--limit", "100000"])
            #expect(r.status == 0, "\(r.stderr)")
            let first = try #require(strictJSONLines(r).first as? [String: Any])
            #expect((first["hits"] as? [Any])?.count == (mode.contains("--text") && !mode.contains("--vector") ? 30 : 30))
        }
        for ef in ["0", "-1", "100001", "9223372036854775807"] {
            expectCleanError(try cli.run(["search", "c", "--vector", q, "--ef=\(ef)"]), "ef")
        }
        expectCleanError(try cli.run(["search", "c", "--text", "doc", "--k1", "inf"]), "k1")
        expectCleanError(try cli.run(["search", "c", "--text", "doc", "--b", "nan"]), "b")
        expectCleanError(try cli.run(["search", "c", "--vector", q, "--text", "doc", "--rrf-k", "inf"]), "RRF")
        expectCleanError(try cli.run(["search", "c", "--vector", q, "--score-threshold", "nan"]), "NaN")
        for batch in ["9223372036854775807", "0", "1000001"] {
            expectCleanError(try cli.run(["import", "c", dir.sub("in.jsonl"), "--batch=\(batch)"]), "batch size", "1000000")
        }
        // Scroll: any positive page size; Int.max pages everything, with no continuation.
        var r = try cli.run(["scroll", "c", "--limit", "9223372036854775807"])
        #expect(r.status == 0 && r.lines.count == 30 && !r.stdout.contains("next"), "\(r.stderr)")
        expectCleanError(try cli.run(["scroll", "c", "--limit", "0"]), "limit")
        // create's numeric options.
        expectCleanError(try cli.run(["create", "d", "--dim", "0"]), "dimension", "65536")
        expectCleanError(try cli.run(["create", "d", "--dim=-1"]), "dimension", "65536")
        expectCleanError(try cli.run(["create", "d", "--dim", "-1"]), "--dim")  // ArgumentParser's own error, reported the same way
        expectCleanError(try cli.run(["create", "d", "--dim", "99999999999"]), "dimension", "65536")
        expectCleanError(try cli.run(["create", "d", "--dim", "4", "--m", "1"]), "M", "128")
        expectCleanError(try cli.run(["create", "d", "--dim", "4", "--m", "1000000"]), "M", "128")
        expectCleanError(try cli.run(["create", "d", "--dim", "4", "--ef-construction", "0"]), "efConstruction", "10000")
        expectCleanError(try cli.run(["create", "d", "--dim", "4", "--min-graph-rows=-5"]), "minimumRowsForGraph")
        expectCleanError(try cli.run(["export", "c", dir.sub("ex"), "--chunk", "0"]), "chunk")
        expectCleanError(try cli.run(["count", "c"], environment: ["SEXTANT_MEMTABLE_BYTES": "99999999999999999"]), "SEXTANT_MEMTABLE_BYTES")
        r = try cli.run(["collections"])
        #expect(r.status == 0 && r.lines.count == 1)  // nothing was created by the refused commands
    }

    /// A queries file: every row is checked before any output, and an error names the file and row.
    @Test func aBadQueriesFileIsRefusedNamingTheRow() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "c", "--dim", "4", "--metric", "dot"]).status == 0)
        #expect(try cli.run(["upsert", "c", "1", "--vector", "[1,2,3,4]"]).status == 0)
        var rows = randomVectors(3000, dimension: 4, seed: 4)
        try writeNPY(dir.sub("q.npy"), rows)
        var r = try cli.run(["search", "c", "--queries", dir.sub("q.npy"), "--limit", "1000"])  // chunks of 1000 queries
        #expect(r.status == 0, "\(r.stderr)")
        let lines = strictJSONLines(r).compactMap { $0 as? [String: Any] }
        #expect(lines.count == 3000 && lines.enumerated().allSatisfy { ($0.element["query"] as? Int) == $0.offset })
        rows[2500][1] = .nan
        try writeNPY(dir.sub("q.npy"), rows)
        r = try cli.run(["search", "c", "--queries", dir.sub("q.npy")])
        expectCleanError(r, "q.npy: row 2500", "vector[1] is NaN")
        #expect(r.stdout.isEmpty)
        rows[2500] = [3e38, 3e38, 0, 0]
        try writeNPY(dir.sub("q.npy"), rows)
        expectCleanError(try cli.run(["search", "c", "--queries", dir.sub("q.npy")]), "q.npy: row 2500", "1e18")
    }

    /// `[3.4e38, …]` is refused at insert; records stored before the limit (written here through the library,
    /// unvalidated, as an old log would replay them) are never dropped from results, and their non-finite
    /// scores print as JSON null.
    @Test func extremeVectorsAreRefusedAndOldOnesStillPrintStrictJSON() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "e", "--dim", "4", "--metric", "euclidean"]).status == 0)
        #expect(try cli.run(["create", "d", "--dim", "4", "--metric", "dot"]).status == 0)
        for name in ["e", "d"] {
            expectCleanError(try cli.run(["upsert", name, "99", "--vector", "[3.4e38,3.4e38,3.4e38,3.4e38]"]), "record 0", "1e18")
            expectCleanError(try cli.run(["upsert", name, "99", "--vector", "[1e39,0,0,0]"]), "vector[0] is infinite")
            expectCleanError(try cli.run(["search", name, "--vector", "[3.4e38,3.4e38,3.4e38,3.4e38]"]), "query 0", "1e18")
        }
        do {
            let db = try Database.open(at: dir.sub("db"))
            defer { db.close() }
            for name in ["e", "d"] {
                let c = try db.collection(name)
                try c.upsert([Record(id: .int(1), vector: [1, 0, 0, 0], document: "alpha"), Record(id: .int(2), vector: [2, 0, 0, 0], document: "alpha beta")])
                _ = try c.commit(.init(mutations: [.upsert(.int(99), vector: [3.4e38, 3.4e38, 3.4e38, 3.4e38], metadata: [], document: "alpha")]))
            }
        }
        // Euclidean from the origin: 1, 2, then the old record at an infinite distance — not left out.
        var r = try cli.run(["search", "e", "--vector", "[0,0,0,0]", "--limit", "5"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == #"{"query":0,"hits":[{"id":1,"score":1.0},{"id":2,"score":2.0},{"id":99,"score":null}]}"# + "\n", "\(r.stdout)")
        _ = strictJSONLines(r)
        // Dot with [-1,-1,-1,-1]: the old record's dot product is -inf, the worst: last, not lost.
        r = try cli.run(["search", "d", "--vector", "[-1,-1,-1,-1]", "--limit", "5", "--exact"])
        #expect(r.stdout == #"{"query":0,"hits":[{"id":1,"score":-1.0},{"id":2,"score":-2.0},{"id":99,"score":null}]}"# + "\n", "\(r.stdout)")
        // ... and with [1,1,1,1] its +inf is the best.
        r = try cli.run(["search", "d", "--vector", "[1,1,1,1]", "--limit", "1"])
        #expect(r.stdout == #"{"query":0,"hits":[{"id":99,"score":null}]}"# + "\n", "\(r.stdout)")
        // Hybrid with --explain (each side's score), the vector itself (with-vector), info and collections --json.
        for args in [
            ["search", "e", "--vector", "[0,0,0,0]", "--text", "alpha", "--explain", "--with-vector"],
            ["search", "d", "--vector", "[1,1,1,1]", "--text", "alpha", "--fusion", "weighted", "--explain"],
            ["get", "e", "99"], ["info", "e"], ["--json", "collections"], ["scroll", "d", "--with-vector"],
        ] {
            r = try cli.run(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            #expect(!strictJSONLines(r).isEmpty)
            for word in ["inf", "nan", "NaN"] { #expect(!r.stdout.contains(word), "\(args): \(r.stdout)") }
        }
        r = try cli.run(["search", "e", "--vector", "[0,0,0,0]", "--text", "alpha", "--explain"])
        let hits = try #require((strictJSONLines(r).first as? [String: Any])?["hits"] as? [[String: Any]])
        let old = try #require(hits.first { $0["id"] as? Int == 99 })
        #expect((old["explain"] as? [String: Any])?["vector_score"] is NSNull, "\(old)")
    }

    @Test func idsAndContinuationTokensFollowOneRule() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "c", "--dim", "2"]).status == 0)
        let v = ["--vector", "[1,2]"]
        // Digits past UInt64.max: an error on every path, as in a JSON Lines import.
        expectCleanError(try cli.run(["upsert", "c", "18446744073709551616"] + v), "18446744073709551615", "s:18446744073709551616", "--string-id")
        expectCleanError(try cli.run(["get", "c", "18446744073709551616"]), "18446744073709551615")
        expectCleanError(try cli.run(["delete", "c", "18446744073709551616"]), "18446744073709551615")
        try #"{"id":18446744073709551616,"vector":[1,2]}"#.write(toFile: dir.sub("big.jsonl"), atomically: true, encoding: .utf8)
        expectCleanError(try cli.run(["import", "c", dir.sub("big.jsonl")]), "line 1", "18446744073709551615")
        expectCleanError(try cli.run(["upsert", "c", "i:x"] + v), "i:")
        #expect(try cli.run(["count", "c"]).stdout == "0\n")
        // As a string, it is fine — by prefix or by flag — and both name the same record.
        #expect(try cli.run(["upsert", "c", "s:18446744073709551616"] + v).status == 0)
        #expect(try cli.run(["upsert", "c", "18446744073709551616", "--string-id"] + v).status == 0)
        #expect(try cli.run(["upsert", "c", "18446744073709551615"] + v).status == 0)
        #expect(try cli.run(["upsert", "c", "i:7"] + v).status == 0)
        #expect(try cli.run(["count", "c"]).stdout == "3\n")
        var r = try cli.run(["get", "c", "s:18446744073709551616", "18446744073709551615", "7", "--no-vector"])
        #expect(r.status == 0 && r.lines == [#"{"id":"18446744073709551616"}"#, #"{"id":18446744073709551615}"#, #"{"id":7}"#], "\(r.stdout)\(r.stderr)")
        // Continuation tokens: malformed ones are refused saying what a token looks like.
        for bad in ["garbage!!", "42", "i:", "i:-3", "s:", "x:1"] {
            expectCleanError(try cli.run(["scroll", "c", "--after", bad]), "--after", "i:N", "s:TEXT")
        }
        r = try cli.run(["scroll", "c", "--limit", "1"])
        #expect(r.lines.last == #"{"next":"i:7"}"#, "\(r.stdout)")
        r = try cli.run(["scroll", "c", "--limit", "2", "--after", "i:7"])
        #expect(r.lines.first == #"{"id":18446744073709551615}"# && r.lines.last == #"{"next":"s:18446744073709551616"}"#, "\(r.stdout)")
        r = try cli.run(["scroll", "c", "--after", "s:18446744073709551616"])
        #expect(r.status == 0 && r.stdout.isEmpty)
    }

    @Test func controlCharactersInUserInputAreEscaped() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "c", "--dim", "2"]).status == 0)
        expectCleanError(try cli.run(["info", "x\u{1B}[31mred"]), #"x\u{1B}[31mred"#)
        expectCleanError(try cli.run(["create", "a\nb", "--dim", "2"]), #"a\nb"#)
        expectCleanError(try cli.run(["create", "z", "--dim", "2", "--metric", "co\u{7}sine"]), #"co\u{7}sine"#)
        expectCleanError(try cli.run(["upsert", "c", "s:\u{1B}]0;pwned\u{7}", "--vector", "[1,2,3]"]), #"\u{1B}]0;pwned\u{7}"#)
        let long = try cli.run(["info", String(repeating: "n", count: 100_000)])
        expectCleanError(long, "characters omitted")
        #expect(long.stderr.count < 2500)
        let r = try cli.run(["get", "c", "s:\u{1B}[2J"])
        #expect(r.status == 1 && r.stderr == #"not found: '\u{1B}[2J'"# + "\n", "\(r.stderr.debugDescription)")
        // JSON output quotes what it echoes as JSON strings.
        let ok = try cli.run(["--json", "index", "create", "c", "f\"\u{1B}", "--type", "keyword"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let parsed = strictJSONLines(ok).first as? [String: Any]
        #expect(parsed?["indexed"] as? String == "f\"\u{1B}", "\(ok.stdout)")
    }

    /// "indexed 12000 of 10752 rows": the count of graph rows included replaced rows. Both numbers are now
    /// live records.
    @Test func importReportsLiveIndexedRecords() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "c", "--dim", "8", "--min-graph-rows", "100"]).status == 0)
        _ = try writeJSONLines(dir.sub("a.jsonl"), count: 2000, dimension: 8, seed: 1)
        _ = try writeJSONLines(dir.sub("b.jsonl"), count: 1500, dimension: 8, seed: 2)  // replaces ids 0..<1500
        #expect(try cli.run(["import", "c", dir.sub("a.jsonl")]).status == 0)
        #expect(try cli.run(["flush", "c"]).status == 0)
        let r = try cli.run(["import", "c", dir.sub("b.jsonl")])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stderr.split(separator: "\n").first { $0.hasPrefix("indexed ") })
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count >= 2 && numbers[0] <= numbers[1] && numbers[1] == 2000, "\(line)")
    }

    /// A batch over 1 GiB encoded was accepted (the log reader refuses such a record: it could never be
    /// replayed). 4,200 rows of 65,536 zeros is a sparse .npy file of 1.1 GB that costs no disk.
    @Test func anImportBatchOverOneGiBIsRefusedBeforeAnythingIsWritten() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        let d = 65_536, n = 4_200
        #expect(try cli.run(["create", "c", "--dim", "\(d)", "--metric", "euclidean"]).status == 0)
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(n), \(d)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        let path = dir.sub("big.npy")
        try data.write(to: URL(fileURLWithPath: path))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(data.count + n * d * 4))
        try handle.close()
        let r = try cli.run(["import", "c", path, "--batch", "5000", "--no-index-wait"])
        expectCleanError(r, "big.npy: row", "1 GiB", "--batch", "5000")
        #expect(!r.stdout.contains("committed"))
        #expect(try cli.run(["count", "c"]).stdout == "0\n")
    }
}
