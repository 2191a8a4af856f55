// Sextant — an embedded vector database. Licensed under Apache-2.0.

import ArgumentParser
import Foundation
import Sextant

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a collection.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Collection name (letters, digits, '_', '-', '.').") var name: String
    @Option(name: .customLong("dim"), help: "Vector dimension, 1…65536.") var dimension: Int
    @Option(help: "cosine | dot | euclidean | manhattan") var metric: String = "cosine"
    @Option(name: .customLong("m"), help: "HNSW links per node (M), 2…128.") var neighborsPerNode: Int = 16
    @Option(name: .customLong("ef-construction"), help: "HNSW beam width while building (efConstruction), 1…10000.") var efConstruction: Int = 200
    @Option(help: "Segments with fewer rows get no graph and are searched exactly (≥ 0).") var minGraphRows: Int = 1024
    @Option(help: "none | int8: traverse graphs on int8 codes, rescoring candidates with the float vectors.") var quantization: String = "none"
    @Option(help: "Words left out of full-text indexes: none | english | a comma-separated list.") var stopWords: String = "none"

    func run() throws {
        guard let m = Metric(name: metric) else { fail("unknown metric \(SextantError.quoted(metric)) (use cosine, dot, euclidean or manhattan)") }
        try withDatabase(global) { db in
            guard let q = Quantization(rawValue: quantization) else { fail("unknown quantization \(SextantError.quoted(quantization)) (use none or int8)") }
            let stops: Set<String>
            switch stopWords {
            case "none": stops = []
            case "english": stops = Tokenizer.englishStopWords
            default: stops = Set(stopWords.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
            }
            let index = IndexConfiguration(
                neighborsPerNode: neighborsPerNode, indexingSearchCount: efConstruction, minimumRowsForGraph: minGraphRows, quantization: q,
                stopWords: stops)
            try db.createCollection(name, dimension: dimension, metric: m, index: index)
            if global.json {
                Output.line(#"{"created":\#(JSONOut.string(name)),"dimension":\#(dimension),"metric":\#(JSONOut.string(m))}"#)
            } else {
                Output.line("created collection '\(name)' (dimension \(dimension), \(m))")
            }
            Output.flush()
        }
    }
}

struct Collections: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List collections.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try withDatabase(global, readOnly: true) { db in
            let failed = db.unavailableCollections()
            var rows: [CollectionInfo] = []
            for name in db.collectionNames() where failed[name] == nil {
                rows.append(try db.collection(name).info())
            }
            if global.json {
                Output.line(JSONOut.encode(rows.map { ["name": $0.name, "dimension": "\($0.dimension)", "metric": $0.metric.rawValue, "count": "\($0.count)"] }))
            } else {
                for r in rows { Output.line("\(r.name)\t\(r.count) records\tdim \(r.dimension)\t\(r.metric)") }
            }
            for (name, e) in failed.sorted(by: { $0.key < $1.key }) {
                FileHandle.standardError.write(Data("warning: \(name): \(e.message)\n".utf8))
            }
            Output.flush()
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a collection's size and layout (JSON).")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        try withDatabase(global, readOnly: true) { db in
            Output.line(JSONOut.encode(try db.collection(name).info()))
            Output.flush()
        }
    }
}

struct Drop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a collection and its files.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        try withDatabase(global) { db in
            try db.dropCollection(name)
            Output.line(global.json ? #"{"dropped":\#(JSONOut.string(name))}"# : "dropped collection '\(name)'")
            Output.flush()
        }
    }
}

struct Flush: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the in-memory table of a collection to a segment and build its graph.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        try withDatabase(global) { db in
            let c = try db.collection(name)
            try c.flush()
            try c.waitForIndexing()
            Output.line(global.json ? #"{"flushed":\#(JSONOut.string(name))}"# : "flushed '\(name)'")
            Output.flush()
        }
    }
}

struct Compact: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Merge a collection's segments and drop deleted rows, freeing disk.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        try withDatabase(global) { db in
            let c = try db.collection(name)
            let before = try c.info().bytesOnDisk
            try c.compact()
            try c.waitForIndexing()
            let after = try c.info()
            if global.json {
                Output.line(#"{"compacted":\#(JSONOut.string(name)),"bytes_before":\#(before),"bytes_after":\#(after.bytesOnDisk),"segments":\#(after.segments.count)}"#)
            } else {
                Output.line("compacted '\(name)': \(before) → \(after.bytesOnDisk) bytes on disk, \(after.segments.count) segment(s)")
            }
            Output.flush()
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every checksum and structure of every file, changing nothing.",
        discussion: """
            Read-only: no recovery runs, no torn log tail is cut, no file is removed. Runs beside read-only
            commands, not while another process has the database open for writing.
            Exit status: 0 when no corruption was found (notes, such as a torn log tail left by a crash, are not
            corruption), 2 when corruption was found (each problem names the file and offset; `sextant repair`
            salvages what can be salvaged), 1 when the check could not be made (locked, no database, I/O error).
            """)
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let report: VerificationReport
        do { report = try Database.verify(at: global.databasePath) } catch { fail(error.message) }
        if global.json {
            Output.line(JSONOut.encode(report))
        } else {
            for p in report.problems { Output.line("CORRUPT: " + p) }
            for n in report.notes { Output.line("note: " + n) }
            Output.line(report.isClean
                ? "ok: \(report.filesChecked) files, \(report.bytesChecked) bytes verified"
                : "\(report.problems.count) problem(s) found")
        }
        Output.flush()
        if !report.isClean { throw ExitCode(2) }
    }
}

struct Repair: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Salvage a damaged database: keep what can be read, quarantine damaged files, report what was lost.",
        discussion: """
            A dry run by default: prints what it would do and changes nothing. With --apply it makes the changes:
            damaged files are hard-linked into DB/quarantine/repair-<time>/ and dropped from use; damaged
            segments are dropped (their records are lost, listed by id when readable); damaged graphs and
            index files are dropped (rebuilt on the next open); a damaged log is replayed with every intact
            batch, also those after the damage, and written to segments (the batches in between are lost,
            listed by sequence number). Run `sextant verify` first to see the damage; back up the database
            directory before --apply if you can.
            Needs the database to itself (no other process may have it open).
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Make the changes (default: dry run).") var apply = false

    func run() throws {
        let report: RepairReport
        do { report = try Database.repair(at: global.databasePath, apply: apply) } catch { fail(error.message) }
        if global.json {
            Output.line(JSONOut.encode(report))
            Output.flush()
            return
        }
        if report.isClean {
            Output.line("nothing to repair")
            Output.flush()
            return
        }
        for a in report.actions { Output.line((apply ? "repaired: " : "would repair: ") + a) }
        for l in report.losses {
            var line = (apply ? "lost: " : "would lose: ") + "collection '\(l.collection)': \(l.what)"
            if let n = l.records { line += " — \(n) records" }
            if !l.ids.isEmpty { line += " — ids: " + l.ids.prefix(20).joined(separator: ", ") + (l.ids.count > 20 || !l.idsComplete ? ", …" : "") }
            Output.line(line)
        }
        for (name, n) in report.salvagedBatches.sorted(by: { $0.key < $1.key }) {
            Output.line("collection '\(name)': \(n) batches salvaged from its log")
        }
        if let q = report.quarantineDirectory { Output.line("damaged files moved to \(q)") }
        if !apply { Output.line("dry run: nothing was changed; run `sextant repair --apply` to make these changes") }
        Output.flush()
    }
}

struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index", abstract: "Manage payload indexes (indexes on metadata fields that filters use).",
        subcommands: [IndexCreate.self, IndexDrop.self, IndexList.self])
}

struct IndexCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Index a metadata field; returns once every segment covers it.",
        discussion: "Types: keyword (strings), integer and float (numbers: match and range), bool, datetime (RFC 3339 strings), text (words).")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument(help: "The field: dots reach into objects, [] into arrays (e.g. meta.lang, tags).") var field: String
    @Option(help: "keyword | integer | float | bool | datetime | text") var type: String

    func run() throws {
        guard let t = PayloadIndexType(rawValue: type) else {
            fail("unknown index type \(SextantError.quoted(type)) (use \(PayloadIndexType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        try withDatabase(global) { db in
            try db.collection(name).createPayloadIndex(field, type: t)
            Output.line(global.json ? #"{"indexed":\#(JSONOut.string(field)),"type":\#(JSONOut.string(t.rawValue))}"# : "indexed field '\(field)' of '\(name)' (\(t.rawValue))")
            Output.flush()
        }
    }
}

struct IndexDrop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drop", abstract: "Stop indexing a metadata field.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument var field: String

    func run() throws {
        try withDatabase(global) { db in
            try db.collection(name).dropPayloadIndex(field)
            Output.line(global.json ? #"{"dropped_index":\#(JSONOut.string(field))}"# : "dropped the index of field '\(field)' of '\(name)'")
            Output.flush()
        }
    }
}

struct IndexList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List a collection's payload indexes.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        try withDatabase(global, readOnly: true) { db in
            let specs = try db.collection(name).payloadIndexes
            if global.json {
                Output.line(JSONOut.encode(specs))
            } else {
                for s in specs { Output.line("\(s.key)\t\(s.type.rawValue)") }
            }
            Output.flush()
        }
    }
}

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Point-in-time snapshots: cheap (hard links), consistent while writes continue.",
        subcommands: [SnapshotCreate.self, SnapshotList.self, SnapshotRestore.self, SnapshotDelete.self, SnapshotArchiveCommand.self])
}

struct SnapshotCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Snapshot the database, or one collection.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Snapshot name (default: snapshot-<UTC time>).") var name: String?
    @Option(help: "Only this collection.") var collection: String?

    func run() throws {
        try withDatabase(global) { db in
            let t = Date()
            let info = try db.createSnapshot(name, collections: collection.map { [$0] })
            let ms = Date().timeIntervalSince(t) * 1000
            if global.json {
                Output.line(#"{"snapshot":\#(JSONOut.string(info.name)),"collections":\#(info.collections.count),"records":\#(info.records),"bytes":\#(info.bytes),"ms":\#(String(format: "%.1f", ms))}"#)
            } else {
                Output.line("created snapshot '\(info.name)': \(info.collections.joined(separator: ", ")), \(info.records) records, \(info.bytes) bytes linked (\(String(format: "%.0f", ms)) ms)")
            }
            Output.flush()
        }
    }
}

struct SnapshotList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List snapshots, oldest first.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try withDatabase(global, readOnly: true) { db in
            let all = try db.snapshots()
            if global.json {
                Output.line(JSONOut.encode(all))
            } else {
                for s in all {
                    let date = Date(timeIntervalSince1970: s.createdAt)
                    Output.line("\(s.name)\t\(ISO8601DateFormatter().string(from: date))\t\(s.records) records\t\(s.collections.joined(separator: ","))")
                }
            }
            Output.flush()
        }
    }
}

struct SnapshotRestore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Replace collections with their state in a snapshot (or restore one under a new name).",
        discussion: """
            The new state is built beside the old and swapped in atomically; a failure changes nothing. --from FILE first \
            imports an archive written by `snapshot archive`; an encrypted one needs its key (--key KEYFILE or \
            $SEXTANT_BACKUP_KEY) and is authenticated whole before it is used.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Snapshot name (with --from: optional, the archive's name by default).") var name: String?
    @Option(help: "A snapshot archive file (from another machine).") var from: String?
    @Option(help: "Only this collection of the snapshot.") var collection: String?
    @Option(name: .customLong("as"), help: "Restore the (one) collection under this new name instead of replacing it.") var newName: String?
    @Option(help: ArgumentHelp("With --from: the key of an encrypted archive (default: $SEXTANT_BACKUP_KEY when set).", valueName: "keyfile")) var key: String?

    func run() throws {
        guard name != nil || from != nil else { fail("give a snapshot name, or --from FILE") }
        if key != nil && from == nil { fail("--key goes with --from FILE") }
        let key = from == nil ? nil : decryptionKey(file: key)
        try withDatabase(global) { db in
            var snapshot = name
            if let from {
                let info = try db.importSnapshotArchive(from, as: name, key: key)
                snapshot = info.name
            }
            try db.restoreSnapshot(snapshot!, collections: collection.map { [$0] }, as: newName)
            Output.line(global.json ? #"{"restored":\#(JSONOut.string(snapshot!))}"# : "restored snapshot '\(snapshot!)'")
            Output.flush()
        }
    }
}

struct SnapshotDelete: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a snapshot.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        try withDatabase(global) { db in
            try db.deleteSnapshot(name)
            Output.line(global.json ? #"{"deleted_snapshot":\#(JSONOut.string(name))}"# : "deleted snapshot '\(name)'")
            Output.flush()
        }
    }
}

struct SnapshotArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive", abstract: "Write a snapshot to one file (checksummed) for `snapshot restore --from FILE` elsewhere.",
        discussion: "--encrypt KEYFILE (or $SEXTANT_BACKUP_KEY) encrypts and authenticates the whole archive; make a key with `sextant keygen`.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument var file: String
    @Option(help: ArgumentHelp("Encrypt with the key in this file (default: $SEXTANT_BACKUP_KEY when set).", valueName: "keyfile")) var encrypt: String?
    @Flag(help: "Write a plain archive even when $SEXTANT_BACKUP_KEY is set.") var noEncrypt = false

    func run() throws {
        let key = encryptionKey(file: encrypt, noEncrypt: noEncrypt)
        try withDatabase(global, readOnly: true) { db in
            try db.archiveSnapshot(name, to: file, encryptionKey: key)
            Output.line(
                global.json
                    ? #"{"archived":\#(JSONOut.string(name)),"file":\#(JSONOut.string(file))\#(keyIDField(key?.id))}"#
                    : "archived snapshot '\(name)' to \(file)\(encryptedNote(key?.id))")
            Output.flush()
        }
    }
}
