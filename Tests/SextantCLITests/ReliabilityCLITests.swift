// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10 from the command line: read commands change nothing on disk, verify tells corruption from "could
/// not check", repair salvages, damaged collections can be read up to the damage.
@Suite struct ReliabilityCLITests {

    /// A database whose log holds unflushed batches and a torn tail: read commands must neither cut the tail,
    /// nor flush, nor remove anything — the way `count` after a full disk used to rerun a failing flush.
    @Test func readCommandsChangeNothingOnDisk() throws {
        let dir = TemporaryDirectory("sextant-cli-ro")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 300, dimension: 8, seed: 5)
        #expect(try cli.run(["create", "docs", "--dim", "8"]).status == 0)
        #expect(try cli.run(["import", "docs", dir.sub("in.jsonl"), "--batch", "50", "--no-index-wait"]).status == 0)
        let log = dir.sub("db/collections/0000000000000001/wal/0000000000000001.log")
        // A torn tail, as a crash would leave.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        h.seekToEndOfFile()
        h.write(Data([0x40, 0, 0, 0, 1, 2, 3]))
        try h.close()
        FileManager.default.createFile(atPath: dir.sub("db/collections/0000000000000001/junk.tmp"), contents: Data([1]))
        let before = try fileContents(under: dir.sub("db"))
        let q = "[" + Array(repeating: "0.5", count: 8).joined(separator: ",") + "]"
        for args in [["count", "docs"], ["collections"], ["info", "docs"], ["get", "docs", "3"], ["scroll", "docs", "--limit", "5"],
                     ["search", "docs", "--vector", q, "--limit", "3"], ["index", "list", "docs"], ["snapshot", "list"], ["verify"]] {
            let r = try cli.run(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            #expect(try fileContents(under: dir.sub("db")) == before, "\(args) changed the database's files")
        }
        #expect(try cli.run(["count", "docs"]).stdout == "300\n")
        let export = try cli.run(["export", "docs", dir.sub("out")])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(try fileContents(under: dir.sub("db")) == before, "export changed the database's files")
        // The first command that writes recovers: the torn tail is cut, the leftover removed.
        #expect(try cli.run(["upsert", "docs", "1000", "--vector", q]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: dir.sub("db/collections/0000000000000001/junk.tmp")))
        #expect(try cli.run(["count", "docs"]).stdout == "301\n")
    }

    @Test func verifyExitStatusesAndRepair() throws {
        let dir = TemporaryDirectory("sextant-cli-repair")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 90, dimension: 8, seed: 6)
        #expect(try cli.run(["create", "docs", "--dim", "8"]).status == 0)
        #expect(try cli.run(["import", "docs", dir.sub("in.jsonl"), "--batch", "10", "--no-index-wait"]).status == 0)
        #expect(try cli.run(["verify"]).status == 0)

        // Locked by a writer: "could not check" (1), not corruption.
        do {
            let db = try Database.open(at: dir.sub("db"))
            let r = try cli.run(["verify"])
            #expect(r.status == 1 && r.stderr.contains("locked") && !r.stdout.contains("CORRUPT"), "\(r.stdout)\(r.stderr)")
            db.close()
        }
        // No database: 1 as well.
        let none = try cli.runRaw(["verify", "--db", dir.sub("nothing-here")])
        #expect(none.status == 1 && none.stderr.contains("no database"))

        // Damage in the middle of the log (batch 3 of 9): 2, naming file and offset; reads fail, --read-damaged
        // reads the 20 records before it.
        let log = dir.sub("db/collections/0000000000000001/wal/0000000000000001.log")
        var data = try Data(contentsOf: URL(fileURLWithPath: log))
        let offsets = data.withUnsafeBytes { map -> [Int] in
            var out: [Int] = []
            var o = WALFile.headerSize
            while let r = WALReader.intactRecord(map, at: o, version: 2) {
                if r.type == WALRecord.batchType { out.append(r.offset) }
                o = r.end
            }
            return out
        }
        #expect(offsets.count == 9)
        data[offsets[2] + 100] ^= 0x20
        try data.write(to: URL(fileURLWithPath: log))
        var r = try cli.run(["verify"])
        #expect(r.status == 2 && r.stdout.contains("CORRUPT: " + log + ": offset \(offsets[2])"), "\(r.stdout)")
        r = try cli.run(["count", "docs"])
        #expect(r.status == 1 && r.stderr.contains(log) && r.stderr.contains("offset \(offsets[2])"))
        r = try cli.run(["count", "docs", "--read-damaged"])
        #expect(r.status == 0 && r.stdout == "20\n", "\(r.stdout)\(r.stderr)")
        r = try cli.run(["upsert", "docs", "5000", "--vector", "[1,1,1,1,1,1,1,1]", "--read-damaged"])
        #expect(r.status == 1 && r.stderr.contains("repair"))

        // repair: the dry run says what would be lost and changes nothing; --apply salvages 80 of 90.
        r = try cli.run(["repair"])
        #expect(r.status == 0 && r.stdout.contains("would lose: collection 'docs': batch 3") && r.stdout.contains("dry run"), "\(r.stdout)")
        #expect(try cli.run(["verify"]).status == 2)
        r = try cli.run(["repair", "--apply"])
        #expect(r.status == 0 && r.stdout.contains("lost: collection 'docs': batch 3") && r.stdout.contains("quarantine"), "\(r.stdout)")
        #expect(try cli.run(["verify"]).status == 0)
        #expect(try cli.run(["count", "docs"]).stdout == "80\n")
        #expect(try cli.run(["repair"]).stdout == "nothing to repair\n")
        r = try cli.run(["repair", "--json"])
        #expect(r.status == 0 && r.stdout.contains(#""applied":false"#))
    }
}
