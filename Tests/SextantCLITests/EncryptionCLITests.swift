// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct EncryptionCLITests {
    /// No key from the surroundings unless a test sets one (empty means unset).
    let noKey = ["SEXTANT_BACKUP_KEY": ""]

    @Test func keygenExportBackupAndArchiveWithKeys() throws {
        let dir = TemporaryDirectory("sextant-cli-enc")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        _ = try writeJSONLines(dir.sub("in.jsonl"), count: 3000, dimension: 16, seed: 4)
        #expect(try cli.run(["create", "docs", "--dim", "16", "--metric", "euclidean"], environment: noKey).status == 0)
        #expect(try cli.run(["import", "docs", dir.sub("in.jsonl")], environment: noKey).status == 0)

        // keygen: a new 0600 file, never overwritten.
        var r = try cli.runRaw(["keygen", dir.sub("k.key")])
        #expect(r.status == 0 && r.stdout.hasPrefix("wrote a new key to \(dir.sub("k.key")) (key id "), "\(r.stdout)\(r.stderr)")
        let keyText = try String(contentsOfFile: dir.sub("k.key"), encoding: .utf8)
        let hex = String(keyText.dropLast())
        #expect(keyText.count == 65 && keyText.hasSuffix("\n"))
        var st = stat()
        #expect(stat(dir.sub("k.key"), &st) == 0 && st.st_mode & 0o777 == 0o600)
        r = try cli.runRaw(["keygen", dir.sub("k.key")])
        #expect(r.status == 1 && r.stderr.contains("already exists"))
        #expect(try String(contentsOfFile: dir.sub("k.key"), encoding: .utf8) == keyText)
        #expect(try cli.runRaw(["keygen", dir.sub("other.key"), "--json"]).stdout.contains(#""key_id":""#))
        #expect(r.stdout.isEmpty)

        // export --encrypt → restore needs --key (or the environment).
        r = try cli.run(["export", "docs", dir.sub("ex"), "--encrypt", dir.sub("k.key"), "--compress", "gzip", "--chunk", "1000"], environment: noKey)
        #expect(r.status == 0 && r.stdout.contains("exported 3000 records") && r.stdout.contains("(encrypted with key "), "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.sub("ex/manifest.json.enc")))
        r = try cli.run(["restore", dir.sub("ex"), "--into", "a"], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("this export is encrypted; pass --key FILE or set SEXTANT_BACKUP_KEY"), "\(r.stderr)")
        r = try cli.run(["restore", dir.sub("ex"), "--into", "a", "--key", dir.sub("other.key")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("wrong key"), "\(r.stderr)")
        r = try cli.run(["restore", dir.sub("ex"), "--into", "a", "--key", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0 && r.stdout.contains("added 3000"), "\(r.stdout)\(r.stderr)")
        r = try cli.run(["restore", dir.sub("ex"), "--into", "b"], environment: ["SEXTANT_BACKUP_KEY": hex])
        #expect(r.status == 0 && r.stdout.contains("added 3000"), "\(r.stdout)\(r.stderr)")
        #expect(try cli.run(["count", "b"], environment: noKey).stdout == "3000\n")

        // With the key in the environment, writes are encrypted unless --no-encrypt; a plain export is
        // refused when a key is given.
        r = try cli.run(["export", "docs", dir.sub("env"), "--json"], environment: ["SEXTANT_BACKUP_KEY": hex])
        #expect(r.status == 0 && r.stdout.contains(#""key_id":""#), "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.sub("env/manifest.json.enc")))
        r = try cli.run(["export", "docs", dir.sub("plain"), "--no-encrypt"], environment: ["SEXTANT_BACKUP_KEY": hex])
        #expect(r.status == 0 && FileManager.default.fileExists(atPath: dir.sub("plain/manifest.json")), "\(r.stderr)")
        r = try cli.run(["restore", dir.sub("plain"), "--into", "c"], environment: ["SEXTANT_BACKUP_KEY": hex])
        #expect(r.status == 1 && r.stderr.contains("not encrypted, but a key was given"), "\(r.stderr)")
        r = try cli.run(["export", "docs", dir.sub("both"), "--encrypt", dir.sub("k.key"), "--no-encrypt"], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("contradict"))
        r = try cli.run(["restore", dir.sub("ex"), "--into", "c"], environment: ["SEXTANT_BACKUP_KEY": "not-a-key"])
        #expect(r.status == 1 && r.stderr.contains("SEXTANT_BACKUP_KEY is not an encryption key") && !r.stderr.contains("not-a-key"), "\(r.stderr)")
        try Data("0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: dir.sub("bad.key")))
        chmod(dir.sub("bad.key"), 0o600)
        r = try cli.run(["restore", dir.sub("ex"), "--into", "c", "--key", dir.sub("bad.key")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("is not an encryption key") && !r.stderr.contains("0123456789abcdef"), "\(r.stderr)")

        // backup --encrypt; verify-backup and restore need the key; the chain keeps its key.
        r = try cli.run(["backup", dir.sub("chain"), "--encrypt", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0 && r.stdout.hasPrefix("backup 1 (full)") && r.stdout.contains("(encrypted with key "), "\(r.stdout)\(r.stderr)")
        #expect(try cli.run(["delete", "docs", "1", "2"], environment: noKey).status == 0)
        r = try cli.run(["backup", dir.sub("chain"), "--incremental"], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("holds encrypted backups"), "\(r.stderr)")
        r = try cli.run(["backup", dir.sub("chain"), "--incremental", "--encrypt", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0 && r.stdout.hasPrefix("backup 2 (incremental)"), "\(r.stdout)\(r.stderr)")
        r = try cli.runRaw(["verify-backup", dir.sub("chain")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("this backup is encrypted; pass --key FILE") && !r.stdout.contains("CORRUPT"), "\(r.stdout)\(r.stderr)")
        r = try cli.runRaw(["verify-backup", dir.sub("chain"), "--key", dir.sub("other.key")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("wrong key"), "\(r.stdout)\(r.stderr)")
        r = try cli.runRaw(["verify-backup", dir.sub("chain"), "--key", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0 && r.stdout.hasPrefix("ok:"), "\(r.stdout)\(r.stderr)")
        r = try cli.run(["restore", dir.sub("chain"), "--at", "1", "--collection", "docs", "--into", "docs-1"], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("is encrypted"), "\(r.stderr)")
        r = try cli.run(["restore", dir.sub("chain"), "--at", "1", "--collection", "docs", "--into", "docs-1", "--key", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try cli.run(["count", "docs-1"], environment: noKey).stdout == "3000\n")

        // A damaged stored file: verify-backup names it and the chunk; restore refuses and changes nothing.
        let seg = try #require(try FileManager.default.subpathsOfDirectory(atPath: dir.sub("chain/backup-000001")).first { $0.hasSuffix(".seg") })
        let segPath = dir.sub("chain/backup-000001/" + seg)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segPath))
        bytes[bytes.count - 5] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: segPath))
        r = try cli.runRaw(["verify-backup", dir.sub("chain"), "--key", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 1 && r.stdout.contains("CORRUPT: ") && r.stdout.contains(seg) && r.stdout.contains("failed authentication"), "\(r.stdout)")
        r = try cli.run(["restore", dir.sub("chain"), "--key", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains(seg) && r.stderr.contains("chunk"), "\(r.stderr)")
        #expect(try cli.run(["count", "docs"], environment: noKey).stdout == "2998\n")

        // snapshot archive --encrypt → snapshot restore --from FILE --key.
        #expect(try cli.run(["snapshot", "create", "s"], environment: noKey).status == 0)
        r = try cli.run(["snapshot", "archive", "s", dir.sub("s.sxa"), "--encrypt", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0 && r.stdout.contains("(encrypted with key "), "\(r.stdout)\(r.stderr)")
        let other = CLIRunner(database: dir.sub("other"))
        r = try other.run(["snapshot", "restore", "--from", dir.sub("s.sxa")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("this snapshot archive is encrypted"), "\(r.stderr)")
        r = try other.run(["snapshot", "restore", "--from", dir.sub("s.sxa"), "--key", dir.sub("other.key")], environment: noKey)
        #expect(r.status == 1 && r.stderr.contains("wrong key"), "\(r.stderr)")
        r = try other.run(["snapshot", "restore", "--from", dir.sub("s.sxa"), "--key", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try other.run(["count", "docs"], environment: noKey).stdout == "2998\n")

        // No output ever shows the key.
        for text in [r.stdout, r.stderr] { #expect(!text.contains(hex)) }
        #expect(try cli.run(["verify"], environment: noKey).status == 0)
    }

    @Test func aKeyFileOthersCanReadGetsAWarning() throws {
        let dir = TemporaryDirectory("sextant-cli-enc")
        defer { dir.cleanup() }
        let cli = CLIRunner(database: dir.sub("db"))
        #expect(try cli.run(["create", "docs", "--dim", "4"], environment: noKey).status == 0)
        #expect(try cli.run(["upsert", "docs", "1", "--vector", "[1,2,3,4]"], environment: noKey).status == 0)
        #expect(try cli.runRaw(["keygen", dir.sub("k.key")]).status == 0)
        chmod(dir.sub("k.key"), 0o644)
        let r = try cli.run(["export", "docs", dir.sub("ex"), "--encrypt", dir.sub("k.key")], environment: noKey)
        #expect(r.status == 0 && r.stderr.contains("warning: the key file") && r.stderr.contains("chmod 600"), "\(r.stderr)")
    }
}
