// Sextant — an embedded vector database. Licensed under Apache-2.0.

import ArgumentParser
import Foundation
import Sextant

#if canImport(Glibc)
import Glibc
#endif

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a new random encryption key (for --encrypt / --key) to FILE.",
        discussion: """
            The key is 32 random bytes, written as 64 hex digits and a newline, readable by you only (mode 0600).
            FILE must not exist. Keep a copy somewhere safe: without the key, backups encrypted with it cannot
            be read by anyone. The same text can go in $SEXTANT_BACKUP_KEY.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The key file to create.") var file: String

    func run() throws {
        let key = EncryptionKey.generate()
        do { try key.write(toNewFile: file) } catch { fail(error.message) }
        if global.json {
            Output.line(#"{"key_file":\#(JSONOut.encode(file)),"key_id":"\#(key.id)"}"#)
        } else {
            Output.line("wrote a new key to \(file) (key id \(key.id)); keep a copy: without it, what it encrypts cannot be read")
        }
        Output.flush()
    }
}

/// The key an encrypting command uses: `--encrypt FILE`, else `$SEXTANT_BACKUP_KEY`, unless `--no-encrypt`.
func encryptionKey(file: String?, noEncrypt: Bool) -> EncryptionKey? {
    if noEncrypt {
        if file != nil { fail("--encrypt and --no-encrypt contradict each other") }
        return nil
    }
    return loadKey(file: file)
}

/// The key a reading command uses: `--key FILE`, else `$SEXTANT_BACKUP_KEY`, else none.
func decryptionKey(file: String?) -> EncryptionKey? { loadKey(file: file) }

private func loadKey(file: String?) -> EncryptionKey? {
    do {
        if let file {
            var st = stat()
            if stat(file, &st) == 0, st.st_mode & 0o077 != 0 {
                FileHandle.standardError.write(
                    Data("warning: the key file \(file) can be read by others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it\n".utf8))
            }
            return try EncryptionKey(contentsOfFile: file)
        }
        return try EncryptionKey.fromEnvironment()
    } catch {
        fail(error.message)
    }
}

/// " (encrypted with key …)" for a summary line, or "".
func encryptedNote(_ keyID: String?) -> String { keyID.map { " (encrypted with key \($0))" } ?? "" }

/// `,"key_id":"…"` for a JSON summary, or "".
func keyIDField(_ keyID: String?) -> String { keyID.map { #","key_id":"\#($0)""# } ?? "" }
