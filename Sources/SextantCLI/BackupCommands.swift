// Sextant — an embedded vector database. Licensed under Apache-2.0.

import ArgumentParser
import Foundation
import Sextant

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a collection to a portable directory (NumPy .npy + JSON Lines, or JSON Lines), streaming.",
        discussion: """
            DIR gets manifest.json (format version, collection configuration, counts, per-file sizes and CRC-32C)
            and chunk files. The directory appears complete or not at all; Ctrl-C cancels cleanly.
            --encrypt KEYFILE (or $SEXTANT_BACKUP_KEY) encrypts and authenticates every file, the manifest included
            (manifest.json.enc, *.enc): `sextant restore` then needs the same key. Make a key with `sextant keygen`.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Argument(help: "The export directory (must not exist, or be empty).") var directory: String
    @Option(help: "npy | jsonl") var format: String = "npy"
    @Option(help: "none | gzip | zstd") var compress: String = "none"
    @Option(help: "Records per chunk file (≥ 1; a chunk never holds more than the collection).") var chunk: Int = 100_000
    @Option(help: "Export only the records passing this filter (Qdrant filter JSON).") var filter: String?
    @Option(help: "auto | bar | json | none (json: JSON Lines events on stderr).") var progress: String = "auto"
    @Option(help: ArgumentHelp("Encrypt with the key in this file (default: $SEXTANT_BACKUP_KEY when set).", valueName: "keyfile")) var encrypt: String?
    @Flag(help: "Write plain files even when $SEXTANT_BACKUP_KEY is set.") var noEncrypt = false

    func run() throws {
        guard let f = ExportFormat(rawValue: format) else { fail("unknown format \(SextantError.quoted(format)) (use npy or jsonl)") }
        guard let c = Compression(rawValue: compress) else { fail("unknown compression \(SextantError.quoted(compress)) (use none, gzip or zstd)") }
        guard let mode = ProgressLine.Mode(rawValue: progress) else { fail("unknown progress mode \(SextantError.quoted(progress)) (use auto, bar, json or none)") }
        let parsed = filter.map(parseFilter)
        let key = encryptionKey(file: encrypt, noEncrypt: noEncrypt)
        try withDatabase(global, readOnly: true) { db in
            let collection = try db.collection(name)
            var line = ProgressLine(total: nil, mode: mode)
            let start = Date()
            let summary = try cancellableOnInterrupt {
                try collection.export(
                    to: directory, options: ExportOptions(format: f, compression: c, chunkRecords: chunk, filter: parsed, encryptionKey: key)
                ) { e in
                    try checkInterrupt()
                    if line.total == nil { line = ProgressLine(total: e.totalRecords, mode: mode) }
                    line.update(e.records, bytes: e.bytes, phase: e.phase, force: e.records == e.totalRecords)
                }
            }
            line.finish()
            let secs = Date().timeIntervalSince(start)
            if global.json {
                Output.line(#"{"exported":\#(summary.records),"files":\#(summary.files),"bytes":\#(summary.bytes),"seconds":\#(String(format: "%.3f", secs))\#(keyIDField(summary.keyID))}"#)
            } else {
                Output.line("exported \(summary.records) records to \(directory): \(summary.files) files, \(summary.bytes) bytes in \(String(format: "%.2f", secs)) s\(encryptedNote(summary.keyID))")
            }
            Output.flush()
        }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore an export directory (new, override or merge) or a backup chain into collections.",
        discussion: """
            Export: every file is checked against the export's sizes and checksums, and the result is built in
            a hidden collection that is swapped in at the end: a damaged file, a conflict under --on-conflict
            fail, an error or Ctrl-C changes nothing. Merge prints counts (added, skipped, overwritten, conflicts).
            Backup (a directory written by `sextant backup`): replays the chain up to the latest backup (or
            --at N) and replaces the backed-up collections (--collection: one of them; --into: under a new name).
            Encrypted exports and backups need their key: --key KEYFILE, or $SEXTANT_BACKUP_KEY. Every chunk is
            authenticated before the swap, so a tampered or damaged file changes nothing. Given a key, a restore
            refuses an unencrypted export or backup (it could have been put in place of the encrypted one).
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The export or backup directory.") var directory: String
    @Option(help: "Backup chains: restore backup number N instead of the latest.") var at: Int?
    @Option(help: "Backup chains: only this collection.") var collection: String?
    @Option(help: "Collection to restore into (default: the exported collection's name).") var into: String?
    @Option(help: "new | override | merge") var mode: String = "new"
    @Option(help: "With merge, for ids on both sides: skip | overwrite | fail") var onConflict: String = "fail"
    @Flag(help: "Check everything and print the counts without changing anything.") var dryRun = false
    @Flag(help: "Give integer ids new values after the collection's largest (strings are kept).") var remapIds = false
    @Option(help: "With --remap-ids, write the mapping here as JSON Lines {\"from\", \"to\"}.") var mapping: String?
    @Option(help: "auto | bar | json | none (json: JSON Lines events on stderr).") var progress: String = "auto"
    @Option(help: ArgumentHelp("The key of an encrypted export or backup (default: $SEXTANT_BACKUP_KEY when set).", valueName: "keyfile")) var key: String?

    func run() throws {
        guard let m = RestoreMode(rawValue: mode) else { fail("unknown mode \(SextantError.quoted(mode)) (use new, override or merge)") }
        guard let policy = ConflictPolicy(rawValue: onConflict) else { fail("unknown conflict policy \(SextantError.quoted(onConflict)) (use skip, overwrite or fail)") }
        guard let pmode = ProgressLine.Mode(rawValue: progress) else { fail("unknown progress mode \(SextantError.quoted(progress)) (use auto, bar, json or none)") }
        if mapping != nil && !remapIds { fail("--mapping goes with --remap-ids") }
        let key = decryptionKey(file: key)
        if FileManager.default.fileExists(atPath: directory + "/CHAIN") {
            if mode != "new" || dryRun || remapIds { fail("a backup restore replaces the collections it holds; use --into NAME to restore one under a new name") }
            try withDatabase(global) { db in
                try cancellableOnInterrupt {
                    try db.restoreBackup(from: directory, at: at, collections: collection.map { [$0] }, as: into, key: key) { _ in try checkInterrupt() }
                }
                Output.line(global.json ? #"{"restored_backup":\#(JSONOut.string(directory))}"# : "restored the backup in \(directory)\(at.map { " (number \($0))" } ?? "")")
                Output.flush()
            }
            return
        }
        if at != nil || collection != nil { fail("--at and --collection apply to backup directories") }
        try withDatabase(global) { db in
            var line = ProgressLine(total: nil, mode: pmode)
            let options = RestoreOptions(
                into: into, mode: m, onConflict: policy, dryRun: dryRun, remapIDs: remapIds, mappingFile: mapping, encryptionKey: key)
            let started = Date()
            let s = try cancellableOnInterrupt {
                try db.restore(from: directory, options: options) { e in
                    try checkInterrupt()
                    if line.total == nil { line = ProgressLine(total: e.totalRecords, mode: pmode) }
                    line.update(e.records, phase: e.phase, force: e.records == e.totalRecords)
                }
            }
            line.finish()
            let secs = Date().timeIntervalSince(started)
            if global.json {
                Output.line(#"{"collection":\#(JSONOut.string(s.collection)),"mode":\#(JSONOut.string(s.mode.rawValue)),"records":\#(s.records),"added":\#(s.added),"skipped":\#(s.skipped),"overwritten":\#(s.overwritten),"conflicts":\#(s.conflicts),"dry_run":\#(s.dryRun),"seconds":\#(String(format: "%.3f", secs))}"#)
            } else {
                Output.line("\(s.dryRun ? "dry run: would restore" : "restored") \(s.records) records into '\(s.collection)' (\(s.mode.rawValue)): added \(s.added), skipped \(s.skipped), overwritten \(s.overwritten), conflicts \(s.conflicts) in \(String(format: "%.2f", secs)) s")
            }
            Output.flush()
        }
    }
}

struct Transfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a collection into another database (or under another name), streaming, with restore's modes.",
        discussion: "Endpoints are DB:COLLECTION (the database directory, a colon, the collection). The source is read from a point-in-time view and never changes; the destination is built hidden and swapped in (Ctrl-C changes nothing).")
    @Option(help: "Source: DB:COLLECTION.") var from: String
    @Option(help: "Destination: DB:COLLECTION.") var to: String
    @Option(help: "new | override | merge") var mode: String = "new"
    @Option(help: "With merge, for ids on both sides: skip | overwrite | fail") var onConflict: String = "fail"
    @Flag(help: "Check and print the counts without changing anything.") var dryRun = false
    @Flag(help: "Give integer ids new values after the destination's largest.") var remapIds = false
    @Option(help: "With --remap-ids, write the mapping here as JSON Lines.") var mapping: String?
    @Option(help: "auto | bar | json | none") var progress: String = "auto"
    @Flag(help: "Machine-readable output.") var json = false

    static func endpoint(_ text: String, _ flag: String) -> (String, String) {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex, text.index(after: colon) != text.endIndex else {
            fail("\(flag) must be DB:COLLECTION, not \(SextantError.quoted(text))")
        }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    func run() throws {
        let (fromDB, fromName) = Self.endpoint(from, "--from")
        let (toDB, toName) = Self.endpoint(to, "--to")
        guard let m = RestoreMode(rawValue: mode) else { fail("unknown mode \(SextantError.quoted(mode)) (use new, override or merge)") }
        guard let policy = ConflictPolicy(rawValue: onConflict) else { fail("unknown conflict policy \(SextantError.quoted(onConflict)) (use skip, overwrite or fail)") }
        guard let pmode = ProgressLine.Mode(rawValue: progress) else { fail("unknown progress mode \(SextantError.quoted(progress))") }
        do {
            let source = try Database.open(at: fromDB)
            defer { source.close() }
            let same = URL(fileURLWithPath: fromDB).standardizedFileURL.path == URL(fileURLWithPath: toDB).standardizedFileURL.path
            let destination = same ? source : try Database.open(at: toDB)
            defer { if !same { destination.close() } }
            var line = ProgressLine(total: nil, mode: pmode)
            let options = RestoreOptions(mode: m, onConflict: policy, dryRun: dryRun, remapIDs: remapIds, mappingFile: mapping)
            let s = try cancellableOnInterrupt {
                try destination.transfer(from: try source.collection(fromName), into: toName, options: options) { e in
                    try checkInterrupt()
                    if line.total == nil { line = ProgressLine(total: e.totalRecords, mode: pmode) }
                    line.update(e.records, phase: e.phase, force: e.records == e.totalRecords)
                }
            }
            line.finish()
            if json {
                Output.line(#"{"collection":\#(JSONOut.string(s.collection)),"mode":\#(JSONOut.string(s.mode.rawValue)),"records":\#(s.records),"added":\#(s.added),"skipped":\#(s.skipped),"overwritten":\#(s.overwritten),"conflicts":\#(s.conflicts),"dry_run":\#(s.dryRun)}"#)
            } else {
                Output.line("\(s.dryRun ? "dry run: would transfer" : "transferred") \(s.records) records into \(toDB):\(s.collection) (\(s.mode.rawValue)): added \(s.added), skipped \(s.skipped), overwritten \(s.overwritten), conflicts \(s.conflicts)")
            }
            Output.flush()
        } catch let error as SextantError {
            fail(error.message)
        }
    }
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up collections into a directory: a full backup, or an increment holding only what changed since the previous one.",
        discussion: """
            `sextant restore DIR` replays the chain; `sextant verify-backup DIR` checks it.
            --encrypt KEYFILE (or $SEXTANT_BACKUP_KEY) encrypts and authenticates every stored file and BACKUP.json.
            A chain has one key or none: increments of an encrypted chain need its key, and an encrypted backup
            cannot join an unencrypted chain. Make a key with `sextant keygen`.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The backup directory (created if missing).") var directory: String
    @Option(help: "Only this collection.") var collection: String?
    @Flag(help: "Store only what changed since the previous backup in DIR.") var incremental = false
    @Option(help: ArgumentHelp("Encrypt with the key in this file (default: $SEXTANT_BACKUP_KEY when set).", valueName: "keyfile")) var encrypt: String?
    @Flag(help: "Write plain files even when $SEXTANT_BACKUP_KEY is set.") var noEncrypt = false

    func run() throws {
        let key = encryptionKey(file: encrypt, noEncrypt: noEncrypt)
        try withDatabase(global) { db in
            let info = try cancellableOnInterrupt {
                try db.backup(to: directory, collections: collection.map { [$0] }, incremental: incremental, encryptionKey: key) { _ in
                    try checkInterrupt()
                }
            }
            if global.json {
                Output.line(#"{"backup":\#(info.sequence),"kind":\#(JSONOut.string(info.kind)),"bytes":\#(info.bytes),"total_bytes":\#(info.totalBytes)\#(keyIDField(info.keyID))}"#)
            } else {
                Output.line("backup \(info.sequence) (\(info.kind)) of \(info.collections.joined(separator: ", ")): stored \(info.bytes) bytes, restores \(info.totalBytes)\(encryptedNote(info.keyID))")
            }
            Output.flush()
        }
    }
}

struct VerifyBackup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-backup", abstract: "Check every checksum of a backup chain and that the chain is complete; exit 1 naming each problem.",
        discussion: "An encrypted chain needs its key (--key KEYFILE or $SEXTANT_BACKUP_KEY); every chunk of every file is then authenticated.")
    @Argument var directory: String
    @Flag(help: "Machine-readable output.") var json = false
    @Option(help: ArgumentHelp("The key of an encrypted chain (default: $SEXTANT_BACKUP_KEY when set).", valueName: "keyfile")) var key: String?

    func run() throws {
        let key = decryptionKey(file: key)
        // A missing or wrong key is not damage: say so as an error, not as a CORRUPT line.
        do { _ = try Database.backups(in: directory, key: key) } catch where error.code == .invalidArgument {
            fail(error.message)
        } catch {}
        let report = Database.verifyBackup(at: directory, key: key)
        if json {
            Output.line(JSONOut.encode(["problems": report.problems]))
        } else {
            for p in report.problems { Output.line("CORRUPT: " + p) }
            Output.line(report.problems.isEmpty ? "ok: \(report.files) files, \(report.bytes) bytes verified" : "\(report.problems.count) problem(s) found")
        }
        Output.flush()
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}
