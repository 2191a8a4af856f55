// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

@Suite struct CLITourTests {
    @Test func tourOfTheCommands() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        let vectors = try writeJSONLines(dir.sub("in.jsonl"), count: 250, dimension: 8, seed: 5)

        var r = try cli.run(["create", "docs", "--dim", "8", "--metric", "euclidean"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try cli.run(["import", "docs", dir.sub("in.jsonl"), "--batch", "100"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines == ["committed 100", "committed 200", "committed 250"])
        #expect(try cli.run(["count", "docs"]).stdout == "250\n")

        r = try cli.run(["get", "docs", "7", "9999"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("not found: 9999"))
        #expect(r.stdout.contains(#""id":7"#) && r.stdout.contains(#""document":"doc 7""#) && r.stdout.contains(#""tag":"t0""#))

        let q = "[" + vectors[42].map { "\($0)" }.joined(separator: ",") + "]"
        r = try cli.run(["search", "docs", "--vector", q, "--limit", "3", "--with-metadata"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix(#"{"query":0,"hits":[{"id":42,"score":0.0,"metadata":{"n":42"#))

        r = try cli.run(["delete", "docs", "42", "43"])
        #expect(r.stdout == "deleted 2 record(s)\n")
        #expect(try cli.run(["count", "docs"]).stdout == "248\n")

        // Scroll every page.
        var seen: [String] = []
        var after: String? = nil
        repeat {
            r = try cli.run(["scroll", "docs", "--limit", "60"] + (after.map { ["--after", $0] } ?? []))
            #expect(r.status == 0)
            after = nil
            for line in r.lines {
                if line.hasPrefix(#"{"next":"#) {
                    after = String(line.dropFirst(9).dropLast(2))
                } else {
                    seen.append(String(line.split(separator: ",")[0]))
                }
            }
        } while after != nil
        #expect(seen.count == 248)
        #expect(Set(seen).count == 248)

        r = try cli.run(["info", "docs"])
        #expect(r.stdout.contains(#""count":248"#) && r.stdout.contains(#""dimension":8"#) && r.stdout.contains(#""metric":"euclidean""#))
        #expect(try cli.run(["compact", "docs"]).status == 0)
        #expect(try cli.run(["verify"]).status == 0)
        #expect(try cli.run(["collections"]).stdout.hasPrefix("docs\t248 records"))
        // Global options work before or after the subcommand, and $SEXTANT_DB is the fallback.
        #expect(try cli.runRaw(["--db", dir.sub("db"), "count", "docs"]).stdout == "248\n")
        #expect(try cli.runRaw(["--json", "--db=\(dir.sub("db"))", "count", "docs"]).stdout == #"{"count":248}"# + "\n")
        #expect(try cli.runRaw(["count", "docs"], environment: ["SEXTANT_DB": dir.sub("db")]).stdout == "248\n")
        #expect(try cli.run(["drop", "docs"]).status == 0)
        #expect(try cli.run(["collections"]).stdout == "")
    }

    /// Filters, payload indexes, full-text and hybrid search from the command line.
    @Test func filtersIndexesTextAndHybridSearch() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 250, dimension: 8, seed: 5)
        #expect(try cli.run(["create", "docs", "--dim", "8", "--metric", "euclidean"]).status == 0)
        #expect(try cli.run(["import", "docs", dir.sub("in.jsonl")]).status == 0)
        // Records carry {"n": i, "tag": "t(i % 7)"} and the document "doc i".
        let f = #"{"must":[{"key":"tag","match":{"value":"t1"}}],"must_not":[{"key":"n","range":{"lt":100}}]}"#
        let expected = (100..<250).filter { $0 % 7 == 1 }.count
        #expect(try cli.run(["count", "docs", "--filter", f]).stdout == "\(expected)\n")
        var r = try cli.run(["index", "create", "docs", "tag", "--type", "keyword"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try cli.run(["index", "create", "docs", "n", "--type", "integer"]).status == 0)
        #expect(try cli.run(["index", "list", "docs"]).stdout == "tag\tkeyword\nn\tinteger\n")
        #expect(try cli.run(["count", "docs", "--filter", f]).stdout == "\(expected)\n")
        r = try cli.run(["search", "docs", "--vector", "[0,0,0,0,0,0,0,0]", "--limit", "5", "--filter", f, "--with-metadata", "--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("plan: segment") || r.stderr.contains("plan: memtable"), "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: #""tag":"t1""#).count == 6, "\(r.stdout)")
        r = try cli.run(["scroll", "docs", "--filter", f, "--limit", "1000"])
        #expect(r.lines.count == expected)
        r = try cli.run(["search", "docs", "--text", "doc 7", "--limit", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix(#"{"query":0,"hits":[{"id":7,"#), "\(r.stdout)")
        r = try cli.run(["search", "docs", "--vector", "[0,0,0,0,0,0,0,0]", "--text", "doc 7", "--limit", "3", "--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        // Every hit explains itself; records on both sides outrank those on one, so ranks vary.
        #expect(r.stdout.components(separatedBy: #""explain":{"#).count == 4, "\(r.stdout)")
        #expect(r.stdout.contains(#""text_rank":"#) && r.stdout.contains(#""vector_rank":"#), "\(r.stdout)")
        r = try cli.run(["delete", "docs", "--filter", f])
        #expect(r.stdout == "deleted \(expected) record(s)\n")
        #expect(try cli.run(["count", "docs", "--filter", f]).stdout == "0\n")
        #expect(try cli.run(["count", "docs"]).stdout == "\(250 - expected)\n")
        // Bad filters are refused naming the part.
        r = try cli.run(["count", "docs", "--filter", #"{"must":[{"key":"n","range":{"gt":"soon"}}]}"#])
        #expect(r.status != 0 && r.stderr.contains("filter.must[0].range.gt"), "\(r.stderr)")
        r = try cli.run(["index", "create", "docs", "x", "--type", "color"])
        #expect(r.status != 0 && r.stderr.contains("unknown index type"))
        #expect(try cli.run(["index", "drop", "docs", "tag"]).status == 0)
        #expect(try cli.run(["index", "drop", "docs", "tag"]).status != 0)
        #expect(try cli.run(["verify"]).status == 0)
    }

    @Test func snapshotsFromTheCommandLine() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 120, dimension: 4, seed: 3)
        #expect(try cli.run(["create", "docs", "--dim", "4", "--metric", "euclidean"]).status == 0)
        #expect(try cli.run(["import", "docs", dir.sub("in.jsonl")]).status == 0)
        var r = try cli.run(["snapshot", "create", "first"])
        #expect(r.status == 0 && r.stdout.hasPrefix("created snapshot 'first': docs, 120 records"), "\(r.stdout)\(r.stderr)")
        #expect(try cli.run(["snapshot", "list"]).stdout.hasPrefix("first\t"))
        #expect(try cli.run(["delete", "docs", "1", "2"]).status == 0)
        #expect(try cli.run(["snapshot", "restore", "first"]).status == 0)
        #expect(try cli.run(["count", "docs"]).stdout == "120\n")
        #expect(try cli.run(["snapshot", "restore", "first", "--as", "copy"]).status == 0)
        #expect(try cli.run(["count", "copy"]).stdout == "120\n")
        #expect(try cli.run(["snapshot", "archive", "first", dir.sub("first.sxa")]).status == 0)
        let other = CLIRunner(database: dir.sub("other"))
        r = try other.run(["snapshot", "restore", "--from", dir.sub("first.sxa")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try other.run(["count", "docs"]).stdout == "120\n")
        r = try cli.run(["snapshot", "restore", "missing"])
        #expect(r.status != 0 && r.stderr.contains("no snapshot named 'missing'"))
        #expect(try cli.run(["snapshot", "delete", "first"]).status == 0)
        #expect(try cli.run(["snapshot", "list"]).stdout.isEmpty)
        #expect(try cli.run(["verify"]).status == 0)
    }

    /// export / restore from the command line; Ctrl-C and SIGKILL during an export leave nothing that
    /// restore would accept.
    @Test func exportRestoreAndInterruptions() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 20_000, dimension: 32, seed: 8)
        #expect(try cli.run(["create", "docs", "--dim", "32", "--metric", "euclidean"]).status == 0)
        #expect(try cli.run(["import", "docs", dir.sub("in.jsonl"), "--batch", "5000", "--no-index-wait"]).status == 0)
        var r = try cli.run(["export", "docs", dir.sub("out"), "--compress", "gzip", "--chunk", "5000", "--progress", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("exported 20000 records"), "\(r.stdout)")
        #expect(r.stderr.contains(#""phase":"export""#) && r.stderr.contains(#""total":20000"#), "\(r.stderr)")
        r = try cli.run(["restore", dir.sub("out"), "--into", "copy"])
        #expect(r.status == 0 && r.stdout.contains("added 20000"), "\(r.stdout)\(r.stderr)")
        r = try cli.run(["restore", dir.sub("out"), "--into", "copy", "--mode", "merge", "--on-conflict", "skip", "--dry-run"])
        #expect(r.stdout.contains("dry run") && r.stdout.contains("skipped 20000"), "\(r.stdout)")
        r = try cli.run(["restore", dir.sub("out"), "--into", "copy"])
        #expect(r.status != 0 && r.stderr.contains("already exists"))

        for signal in [SIGINT, SIGKILL] {
            let target = dir.sub("killed-\(signal)")
            let (p, _) = try cli.start(["export", "docs", target, "--chunk", "50", "--format", "jsonl", "--progress", "none"])
            var waited = 0
            while !FileManager.default.fileExists(atPath: target + ".partial") && waited < 20_000 && p.isRunning {
                usleep(1000)
                waited += 1
            }
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            #expect(p.terminationStatus != 0)
            #expect(!FileManager.default.fileExists(atPath: target), "signal \(signal): a complete-looking export was left")
            if signal == SIGINT {
                #expect(!FileManager.default.fileExists(atPath: target + ".partial"), "Ctrl-C left the partial directory")
            }
            for candidate in [target, target + ".partial"] {
                r = try cli.run(["restore", candidate, "--into", "never"])
                #expect(r.status != 0)
            }
            #expect(try cli.run(["count", "never"]).status != 0)
        }
        #expect(try cli.run(["count", "docs"]).stdout == "20000\n")
        // A restore killed while it writes segments leaves no collection, no staging and no work files:
        // the open after it removes them, and the database verifies clean.
        let collectionsDir = dir.sub("db/collections")
        for (round, delay) in [0, 2_000, 20_000].enumerated() {
            let before = try FileManager.default.contentsOfDirectory(atPath: collectionsDir).count
            let (p, _) = try cli.start(["restore", dir.sub("out"), "--into", "fresh-\(round)", "--progress", "none"])
            var waited = 0
            while (try FileManager.default.contentsOfDirectory(atPath: collectionsDir).count) == before && waited < 20_000 && p.isRunning {
                usleep(500)
                waited += 1
            }
            usleep(useconds_t(delay))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let count = try cli.run(["count", "fresh-\(round)"])
            #expect(count.status != 0 || count.stdout == "20000\n", "a killed restore left a partial collection: \(count.stdout)")
            // Read commands open read-only and change nothing; the next open for writing cleans up.
            try Database.open(at: dir.sub("db")).close()
            // Every collection directory left belongs to a listed collection (the staging one is gone).
            let listed = try cli.run(["collections"]).stdout.split(separator: "\n").count
            #expect(try FileManager.default.contentsOfDirectory(atPath: collectionsDir).count == listed)
            let manifests = try FileManager.default.contentsOfDirectory(atPath: dir.sub("db")).filter { $0.hasPrefix("MANIFEST-") }
            for m in manifests {
                #expect(!String(decoding: try Data(contentsOf: URL(fileURLWithPath: dir.sub("db/" + m))), as: UTF8.self).contains("__staging"))
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.sub("db")).allSatisfy { !$0.hasPrefix("restore-") })
        }
        #expect(try cli.run(["verify"]).status == 0)
        r = try cli.runRaw(["transfer", "--from", dir.sub("db") + ":docs", "--to", dir.sub("other") + ":moved"])
        #expect(r.status == 0 && r.stdout.contains("added 20000"), "\(r.stdout)\(r.stderr)")
        #expect(try cli.runRaw(["count", "moved", "--db", dir.sub("other")]).stdout == "20000\n")
        // Backups: full, incremental, verify, restore.
        r = try cli.run(["backup", dir.sub("chain")])
        #expect(r.status == 0 && r.stdout.hasPrefix("backup 1 (full)"), "\(r.stdout)\(r.stderr)")
        #expect(try cli.run(["delete", "docs", "1", "2", "3"]).status == 0)
        r = try cli.run(["backup", dir.sub("chain"), "--incremental"])
        #expect(r.status == 0 && r.stdout.hasPrefix("backup 2 (incremental)"), "\(r.stdout)\(r.stderr)")
        #expect(try cli.runRaw(["verify-backup", dir.sub("chain")]).stdout.hasPrefix("ok:"))
        #expect(try cli.run(["restore", dir.sub("chain"), "--at", "1", "--collection", "docs", "--into", "docs-at-1"]).status == 0)
        #expect(try cli.run(["count", "docs-at-1"]).stdout == "20000\n")
        #expect(try cli.run(["restore", dir.sub("chain"), "--collection", "docs", "--into", "docs-latest"]).status == 0)
        #expect(try cli.run(["count", "docs-latest"]).stdout == "19997\n")
        r = try cli.runRaw(["transfer", "--from", "nocolon", "--to", dir.sub("other") + ":x"])
        #expect(r.status != 0 && r.stderr.contains("DB:COLLECTION"))
        #expect(try cli.run(["verify"]).status == 0)
    }

    @Test func badInputGetsAClearErrorAndLosesNothing() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "c", "--dim", "3"]).status == 0)

        var r = try cli.run(["create", "bad name!", "--dim", "3"])
        #expect(r.status == 1 && r.stderr.contains("invalid collection name"))
        r = try cli.run(["count", "nope"])
        #expect(r.status == 1 && r.stderr.contains("no collection named 'nope'"))
        r = try cli.run(["search", "c", "--vector", "[1,2]"])
        #expect(r.status == 1 && r.stderr.contains("dimension 3"))

        // Batch 1 is fine, batch 2 holds a malformed line: batch 1 stays, nothing of batch 2 is applied.
        let good = (0..<4).map { #"{"id":\#($0),"vector":[1,2,\#($0 + 1)]}"# }
        let lines = good + [#"{"id":4,"vector":[1,2,3]}"#, #"{"id":5,"vector":[1,2,"#, #"{"id":6,"vector":[1,2,3]}"#]
        try lines.joined(separator: "\n").write(toFile: dir.sub("bad.jsonl"), atomically: true, encoding: .utf8)
        r = try cli.run(["import", "c", dir.sub("bad.jsonl"), "--batch", "4"])
        #expect(r.status == 1)
        #expect(r.lines == ["committed 4"])
        #expect(r.stderr.contains("line 6"), "\(r.stderr)")
        #expect(try cli.run(["count", "c"]).stdout == "4\n")

        try #"{"id":9,"vector":[1,NaN,3]}"#.write(toFile: dir.sub("nan.jsonl"), atomically: true, encoding: .utf8)
        r = try cli.run(["import", "c", dir.sub("nan.jsonl")])
        #expect(r.status == 1 && r.stderr.contains("line 1"))
        try #"{"id":9,"vector":[1,3]}"#.write(toFile: dir.sub("dim.jsonl"), atomically: true, encoding: .utf8)
        r = try cli.run(["import", "c", dir.sub("dim.jsonl")])
        #expect(r.status == 1 && r.stderr.contains("line 1") && r.stderr.contains("dimension 3"), "\(r.stderr)")
        try #"{"id":9,"vector":[]}"#.write(toFile: dir.sub("empty.jsonl"), atomically: true, encoding: .utf8)
        r = try cli.run(["import", "c", dir.sub("empty.jsonl")])
        #expect(r.status == 1 && r.stderr.contains("empty"), "\(r.stderr)")
        #expect(try cli.run(["count", "c"]).stdout == "4\n")

        // A second process gets a clear "locked" error while this one holds the database.
        let db = try Database.open(at: dir.sub("db"))
        r = try cli.run(["count", "c"])
        #expect(r.status == 1 && r.stderr.contains("locked"), "\(r.stderr)")
        db.close()
        #expect(try cli.run(["count", "c"]).status == 0)
    }
}

@Suite struct CLIVerifyTests {
    @Test func verifyNamesTheCorruptFile() throws {
        let dir = TemporaryDirectory("sextant-cli")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 300, dimension: 16, seed: 3)
        #expect(try cli.run(["create", "a", "--dim", "16"]).status == 0)
        #expect(try cli.run(["create", "b", "--dim", "16"]).status == 0)
        #expect(try cli.run(["import", "a", dir.sub("in.jsonl"), "--batch", "100"]).status == 0)
        #expect(try cli.run(["flush", "a"]).status == 0)
        #expect(try cli.run(["import", "b", dir.sub("in.jsonl"), "--batch", "50", "--no-index-wait"]).status == 0)
        #expect(try cli.run(["verify"]).status == 0)

        // A flipped byte in a's segment.
        let seg = dir.sub("db/collections/0000000000000001/0000000000000001.seg")
        var data = try Data(contentsOf: URL(fileURLWithPath: seg))
        data[200] ^= 0x10
        try data.write(to: URL(fileURLWithPath: seg))
        var r = try cli.run(["verify"])
        #expect(r.status == 2)
        #expect(r.stdout.contains(seg) && r.stdout.contains("offset"), "\(r.stdout)")

        // A flipped byte in the middle of b's log: b is reported, a's search reports its own damage, and
        // nothing is silently dropped.
        let walDir = dir.sub("db/collections/0000000000000002/wal")
        let logs = try FileManager.default.contentsOfDirectory(atPath: walDir).map { walDir + "/" + $0 }
        #expect(logs.count == 1, "opens without writes must not leave empty logs behind: \(logs)")
        let wal = try #require(logs.max { (try? Data(contentsOf: URL(fileURLWithPath: $0)).count) ?? 0 < (try? Data(contentsOf: URL(fileURLWithPath: $1)).count) ?? 0 })
        var w = try Data(contentsOf: URL(fileURLWithPath: wal))
        w[WALFile.headerSize + 100] ^= 0x01
        try w.write(to: URL(fileURLWithPath: wal))
        r = try cli.run(["verify"])
        #expect(r.status == 2)
        #expect(r.stdout.contains(wal), "\(r.stdout)")
        r = try cli.run(["count", "b"])
        #expect(r.status == 1 && r.stderr.contains(wal) && r.stderr.contains("offset"), "\(r.stderr)")
    }
}
