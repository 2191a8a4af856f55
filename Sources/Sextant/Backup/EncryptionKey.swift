// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A 256-bit key that encrypts and authenticates exports, backups and snapshot archives.
///
/// Every file such a backup writes is sealed with AES-256-GCM in 64 KiB chunks under a key derived for
/// that file alone (HKDF-SHA256, a random salt per file), so a backup at rest is confidential and any
/// change to it — a flipped bit, a cut, an appended or reordered chunk, a file swapped for another — is
/// detected before its contents are used. See Docs/FileFormat.md, "Encrypted container".
///
/// The key is the only secret: whoever has it can read and forge backups, and without it nothing can be
/// recovered. Keeping it (and a copy of it) is the caller's business. ``id`` is a non-secret fingerprint
/// of the key, stored in every encrypted file, so a wrong key is told apart from damage.
///
/// `description` shows the fingerprint only; no error message ever holds key material.
public struct EncryptionKey: Sendable, CustomStringConvertible {
    /// Bytes of a key.
    public static let byteCount = 32

    private let bytes: [UInt8]
    /// The fingerprint: 16 hex digits, the first 8 bytes of SHA-256 of a value derived from the key
    /// (HKDF, info "sextant key id v1"). Reveals nothing about the key; equal keys have equal ids.
    public let id: String
    let idBytes: [UInt8]

    /// A key from exactly 32 bytes.
    /// - Throws: ``SextantError/Code/invalidArgument`` for any other length, or 32 zero bytes.
    public init(bytes: some Collection<UInt8>) throws(SextantError) {
        let b = Array(bytes)
        guard b.count == Self.byteCount else {
            throw SextantError(.invalidArgument, "an encryption key is \(Self.byteCount) bytes, not \(b.count)")
        }
        guard b.contains(where: { $0 != 0 }) else {
            throw SextantError(.invalidArgument, "the encryption key is all zeros: make one with `sextant keygen FILE`")
        }
        self.bytes = b
        let material = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: b), info: Array("sextant key id v1".utf8), outputByteCount: 32)
        let digest = material.withUnsafeBytes { Array(SHA256.hash(data: $0)) }
        idBytes = Array(digest.prefix(8))
        id = idBytes.map { String(format: "%02x", $0) }.joined()
    }

    /// A new random key (from the system's secure generator).
    public static func generate() -> EncryptionKey {
        var rng = SystemRandomNumberGenerator()
        while true {
            let b = (0..<byteCount).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if let key = try? EncryptionKey(bytes: b) { return key }  // all zeros: 2^-256
        }
    }

    /// A key written as text: 64 hex digits, or base64 of 32 bytes; surrounding whitespace is ignored.
    /// - Parameter source: names the text in errors (e.g. "SEXTANT_BACKUP_KEY"); the text itself never appears.
    /// - Throws: ``SextantError/Code/invalidArgument`` when the text is neither.
    public init(text: String, source: String = "the key") throws(SextantError) {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if let b = Self.decodeHex(t) ?? Self.decodeBase64(t) {
            try self.init(bytes: b)
            return
        }
        throw SextantError(
            .invalidArgument,
            "\(source) is not an encryption key: expected 64 hex digits or base64 of 32 bytes (it holds \(t.utf8.count) characters)")
    }

    /// Reads a key file: 32 raw bytes, or (as text, a trailing newline allowed) 64 hex digits or base64
    /// of 32 bytes — `sextant keygen` writes hex.
    /// - Throws: ``SextantError/Code/notFound`` when the file is missing, ``SextantError/Code/invalidArgument``
    ///   when it holds anything else.
    public init(contentsOfFile path: String) throws(SextantError) {
        let io = PosixFileIO()
        guard io.exists(path), !io.isDirectory(path) else { throw SextantError(.notFound, "\(path): no such key file") }
        let size = try fileSize(io, path)
        guard size <= 4096 else {
            throw SextantError(
                .invalidArgument,
                "\(path) is not an encryption key: expected 32 raw bytes, 64 hex digits or base64 of 32 bytes (it holds \(size) bytes)")
        }
        let data = try io.readFile(path)
        if data.count == Self.byteCount {
            try self.init(bytes: data)
            return
        }
        guard let text = String(validatingUTF8CString: data) else {
            throw SextantError(
                .invalidArgument,
                "\(path) is not an encryption key: expected 32 raw bytes, 64 hex digits or base64 of 32 bytes (it holds \(data.count) bytes)")
        }
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let b = Self.decodeHex(t) ?? Self.decodeBase64(t) else {
            throw SextantError(
                .invalidArgument,
                "\(path) is not an encryption key: expected 32 raw bytes, 64 hex digits or base64 of 32 bytes (it holds \(data.count) bytes)")
        }
        try self.init(bytes: b)
    }

    /// The key in `$SEXTANT_BACKUP_KEY` (hex or base64), or nil when the variable is unset or empty.
    /// - Throws: ``SextantError/Code/invalidArgument`` when it is set to something that is not a key.
    public static func fromEnvironment(_ variable: String = "SEXTANT_BACKUP_KEY") throws(SextantError) -> EncryptionKey? {
        guard let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty else { return nil }
        return try EncryptionKey(text: value, source: variable)
    }

    /// Writes the key to a new file as 64 hex digits and a newline, readable by its owner only (mode 0600).
    /// - Throws: ``SextantError/Code/alreadyExists`` when `path` exists: a key file is never overwritten.
    public func write(toNewFile path: String) throws(SextantError) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST { throw SextantError(.alreadyExists, "\(path) already exists: a key file is never overwritten") }
            throw SextantError.posix("create", path)
        }
        let io = PosixFileIO()
        var ok = false
        defer {
            io.close(fd)
            if !ok { try? io.unlink(path) }
        }
        _ = fchmod(fd, 0o600)  // whatever the umask
        try Array((hex + "\n").utf8).withBytes { (b) throws(SextantError) in try io.write(fd, b, path: path) }
        try io.fsync(fd, path: path)
        guard try fileSize(io, path) == 65 else { throw SextantError(.io, "\(path): the key was not written whole") }
        try io.syncDirectory(parentDirectory(of: path))
        ok = true
    }

    public var description: String { "EncryptionKey(id: \(id))" }

    /// The key material as hex. Internal: only ``write(toNewFile:)`` shows it.
    var hex: String { bytes.map { String(format: "%02x", $0) }.joined() }

    var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }

    static func decodeHex(_ t: String) -> [UInt8]? {
        let u = Array(t.utf8)
        guard u.count == 2 * byteCount else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }

    static func decodeBase64(_ t: String) -> [UInt8]? {
        // Standard or URL-safe alphabet, padding optional.
        var s = t.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard s.utf8.count == 43 || s.utf8.count == 44 else { return nil }
        while s.utf8.count % 4 != 0 { s += "=" }
        guard let d = Data(base64Encoded: s), d.count == byteCount else { return nil }
        return Array(d)
    }
}

extension String {
    /// UTF-8 text of `bytes` when they are valid UTF-8 without NUL bytes.
    fileprivate init?(validatingUTF8CString bytes: [UInt8]) {
        guard !bytes.contains(0), let s = String(validating: bytes, as: UTF8.self) else { return nil }
        self = s
    }
}
