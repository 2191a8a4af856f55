// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What a manifest (itself encrypted) says about the encryption of its files.
struct EncryptionInfo: Codable, Equatable {
    var cipher: String
    /// ``EncryptionKey/id`` (named so that snake-case coding round-trips).
    var keyFingerprint: String
    var chunkBytes: Int

    init(key: EncryptionKey) {
        cipher = EncryptedContainer.cipherName
        keyFingerprint = key.id
        chunkBytes = EncryptedContainer.defaultChunkBytes
    }
}

/// The encrypted container every encrypted file is written in (Docs/FileFormat.md, "Encrypted container"):
///
/// ```
/// container := header chunk* last
/// header    := magic "SEXTENC\0" | version:u32 (=1) | chunkBytes:u32 | keyID[8] | salt[32] | noncePrefix[4]
///              | crc:u32 (CRC-32C of bytes 0..<60)                                              (64 bytes)
/// chunk     := AES-256-GCM(ciphertext[chunkBytes]) | tag[16]
/// last      := AES-256-GCM(ciphertext[0...chunkBytes]) | tag[16]
/// fileKey   := HKDF-SHA256(ikm: key, salt: salt, info: "sextant container v1\0" ‖ context)
/// nonce(i)  := noncePrefix ‖ u64be(i)
/// aad(i)    := header ‖ u64be(i) ‖ u8(1 for the last chunk, else 0)
/// ```
/// `context` is the file's name within its backup, so a file moved to another place does not open.
enum EncryptedContainer {
    static let magic: [UInt8] = Array("SEXTENC\0".utf8)
    static let version: UInt32 = 1
    static let headerBytes = 64
    static let tagBytes = 16
    static let nonceBytes = 12
    /// 64 KiB, as age uses: large enough that the tags cost 0.02 %, small enough that swift-crypto's
    /// per-chunk buffers are reused from the heap (1 MiB ones were fresh mappings, page-faulted every time).
    static let defaultChunkBytes = 64 << 10
    static let maxChunkBytes = 64 << 20
    static let cipherName = "AES-256-GCM"

    struct Header {
        var chunkBytes: Int
        var keyID: [UInt8]
        var salt: [UInt8]
        var noncePrefix: [UInt8]
        var bytes: [UInt8]

        var saltHex: String { salt.map { String(format: "%02x", $0) }.joined() }
    }

    static func makeHeader(key: EncryptionKey, chunkBytes: Int) -> Header {
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let prefix = (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var w = ByteWriter(capacity: headerBytes)
        w.raw(magic)
        w.u32(version)
        w.u32(UInt32(chunkBytes))
        w.raw(key.idBytes)
        w.raw(salt)
        w.raw(prefix)
        w.u32(CRC32C.checksum(w.bytes))
        return Header(chunkBytes: chunkBytes, keyID: key.idBytes, salt: salt, noncePrefix: prefix, bytes: w.bytes)
    }

    /// Whether `prefix` (the first bytes of a file) starts an encrypted container.
    static func isEncrypted(_ prefix: some Collection<UInt8>) -> Bool { prefix.starts(with: magic) }

    /// Whether the file at `path` is an encrypted container (false for a missing or short file).
    static func isEncrypted(io: any FileIO, path: String) -> Bool {
        guard let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else { return false }
        defer { io.close(fd) }
        var b = [UInt8](repeating: 0, count: 8)
        let got = b.withUnsafeMutableBytes { (try? io.pread(fd, into: $0, at: 0, path: path)) ?? 0 }
        return got == 8 && isEncrypted(b)
    }

    /// Parses and checks a header; the key must be the one it names.
    /// - Throws: ``SextantError/Code/corrupt`` (damaged header), ``SextantError/Code/unsupportedVersion``,
    ///   ``SextantError/Code/invalidArgument`` for a wrong key.
    static func parseHeader(_ b: [UInt8], path: String, key: EncryptionKey) throws(SextantError) -> Header {
        guard b.count == headerBytes else { throw SextantError(.corrupt, "\(path): truncated: the file ends inside its encryption header") }
        guard isEncrypted(b) else { throw SextantError(.corrupt, "\(path): not an encrypted Sextant file (bad magic)") }
        let crc = b.withUnsafeBytes { $0.u32(at: 60) }
        guard crc == CRC32C.checksum(Array(b[0..<60])) else {
            throw SextantError(.corrupt, "\(path): the encryption header is damaged (checksum mismatch)")
        }
        let v = b.withUnsafeBytes { $0.u32(at: 8) }
        guard v == version else {
            throw SextantError(.unsupportedVersion, "\(path): encrypted container version \(v) is not supported (this build reads \(version))")
        }
        let chunk = Int(b.withUnsafeBytes { $0.u32(at: 12) })
        guard chunk > 0, chunk <= maxChunkBytes else { throw SextantError(.corrupt, "\(path): bad chunk size \(chunk) in the encryption header") }
        let keyID = Array(b[16..<24])
        guard keyID == key.idBytes else {
            throw SextantError(
                .invalidArgument,
                "wrong key: \(path) was encrypted with key \(keyID.map { String(format: "%02x", $0) }.joined()), not with the given key \(key.id)")
        }
        return Header(chunkBytes: chunk, keyID: keyID, salt: Array(b[24..<56]), noncePrefix: Array(b[56..<60]), bytes: b)
    }

    static func fileKey(_ key: EncryptionKey, salt: [UInt8], context: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: key.symmetricKey, salt: salt, info: Array("sextant container v1\0".utf8) + Array(context.utf8), outputByteCount: 32)
    }

    static func nonce(_ prefix: [UInt8], _ index: UInt64) -> AES.GCM.Nonce {
        var n = prefix
        withUnsafeBytes(of: index.bigEndian) { n.append(contentsOf: $0) }
        return try! AES.GCM.Nonce(data: n)  // 12 bytes: cannot fail
    }

    static func aad(_ header: [UInt8], _ index: UInt64, final: Bool) -> [UInt8] {
        var a = header
        withUnsafeBytes(of: index.bigEndian) { a.append(contentsOf: $0) }
        a.append(final ? 1 : 0)
        return a
    }

    /// The message when a file is encrypted and no key was given.
    static func keyRequired(_ path: String, _ what: String) -> String {
        "\(path): this \(what) is encrypted; pass --key FILE or set SEXTANT_BACKUP_KEY"
    }

    /// The message when a key was given and a file is not encrypted.
    static func notEncrypted(_ path: String, _ what: String) -> String {
        "\(path): this \(what) is not encrypted, but a key was given; refusing it, since an unencrypted \(what) could have been put "
            + "in place of an encrypted one (to use it as it is, run without --key and with SEXTANT_BACKUP_KEY unset)"
    }
}

/// Seals plaintext into an encrypted container, chunk by chunk, handing the bytes to `sink` in pieces of
/// about 1 MiB (fewer write calls). A chunk is sealed only once the next byte arrives (or at ``finish()``),
/// so the last chunk is always the one flagged final. Memory: one chunk and the 1 MiB output buffer.
final class EncryptingWriter {
    let header: EncryptedContainer.Header
    private let fileKey: SymmetricKey
    private let chunkBytes: Int
    private let buffer: UnsafeMutableRawBufferPointer
    private var filled = 0
    private var index: UInt64 = 0
    private var finished = false
    private let sink: (UnsafeRawBufferPointer) throws(SextantError) -> Void
    /// Sealed bytes not yet handed to `sink`.
    private var output: [UInt8] = []
    /// An error raised inside a C codec's callback, to rethrow once the codec returns.
    var failure: SextantError?

    init(key: EncryptionKey, context: String, chunkBytes: Int = EncryptedContainer.defaultChunkBytes,
         sink: @escaping (UnsafeRawBufferPointer) throws(SextantError) -> Void) {
        header = EncryptedContainer.makeHeader(key: key, chunkBytes: chunkBytes)
        fileKey = EncryptedContainer.fileKey(key, salt: header.salt, context: context)
        self.chunkBytes = chunkBytes
        buffer = .allocate(byteCount: chunkBytes, alignment: 64)
        self.sink = sink
        output = header.bytes
        output.reserveCapacity(Self.outputBytes + chunkBytes + EncryptedContainer.tagBytes)
    }

    private static let outputBytes = 1 << 20

    deinit {
        buffer.initializeMemory(as: UInt8.self, repeating: 0)  // plaintext does not linger in freed memory
        buffer.deallocate()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(SextantError) {
        var rest = bytes
        while !rest.isEmpty {
            if filled == chunkBytes { try seal(final: false) }
            if filled == 0 && rest.count > chunkBytes {
                // A whole chunk with more bytes after it: sealed in place, not copied first.
                try seal(UnsafeRawBufferPointer(rebasing: rest[0..<chunkBytes]), final: false)
                rest = UnsafeRawBufferPointer(rebasing: rest[chunkBytes...])
                continue
            }
            let n = min(rest.count, chunkBytes - filled)
            UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            filled += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    /// Seals what is buffered as the last chunk (an empty content is one empty chunk).
    func finish() throws(SextantError) {
        precondition(!finished, "EncryptingWriter.finish() called twice")
        try seal(final: true)
        try flush()
        finished = true
    }

    private func flush() throws(SextantError) {
        try output.withBytes { (b) throws(SextantError) in try sink(b) }
        output.removeAll(keepingCapacity: true)
    }

    private func seal(final: Bool) throws(SextantError) {
        try seal(UnsafeRawBufferPointer(rebasing: buffer[0..<filled]), final: final)
        filled = 0
    }

    private func seal(_ plaintext: UnsafeRawBufferPointer, final: Bool) throws(SextantError) {
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.seal(
                plaintext, using: fileKey,
                nonce: EncryptedContainer.nonce(header.noncePrefix, index),
                authenticating: EncryptedContainer.aad(header.bytes, index, final: final))
        } catch {
            throw SextantError(.io, "encryption failed: \(error)")
        }
        // nonce ‖ ciphertext ‖ tag in one buffer.
        output.append(contentsOf: box.combined!.dropFirst(EncryptedContainer.nonceBytes))
        index += 1
        if output.count >= Self.outputBytes { try flush() }
    }

    /// A C codec sink (`sx_codec_sink`) writing into the `EncryptingWriter` passed as context.
    static let codecSink: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int) -> Int32 = { context, bytes, n in
        let w = Unmanaged<EncryptingWriter>.fromOpaque(context!).takeUnretainedValue()
        do throws(SextantError) {
            try w.write(UnsafeRawBufferPointer(start: bytes, count: n))
            return 0
        } catch {
            w.failure = error
            return -1
        }
    }
}

/// Opens an encrypted container chunk by chunk, authenticating each chunk before any of its bytes are
/// returned. Reads about 1 MiB of chunks at a time. The first failure sticks: every later read throws it
/// again.
final class DecryptingReader: ChunkSource {
    let path: String
    let header: EncryptedContainer.Header
    private let io: any FileIO
    private let fd: Int32
    private let fileKey: SymmetricKey
    private let size: Int
    let chunkCount: Int
    private var next = 0
    private let cipher: UnsafeMutableRawBufferPointer
    /// The file range `cipher` holds.
    private var window = 0..<0
    private var plain = Data()
    private var position = 0
    /// A failure (sticky), also one raised inside a C codec's callback.
    var failure: SextantError?

    /// - Parameters:
    ///   - fd: an open descriptor of `path` (not owned).
    ///   - salt: when given, the salt the file's header must carry (from an authenticated manifest).
    init(io: any FileIO, fd: Int32, path: String, key: EncryptionKey, context: String, salt: String? = nil) throws(SextantError) {
        self.io = io
        self.fd = fd
        self.path = path
        size = Int(try io.size(fd, path: path))
        var h = [UInt8](repeating: 0, count: min(size, EncryptedContainer.headerBytes))
        let read: Result<Int, SextantError> = h.withUnsafeMutableBytes { b in Result { () throws(SextantError) in try io.pread(fd, into: b, at: 0, path: path) } }
        let got = try read.get()
        guard got == h.count else { throw SextantError(.io, "\(path): short read of the encryption header") }
        header = try EncryptedContainer.parseHeader(h, path: path, key: key)
        if let salt, salt != header.saltHex {
            throw SextantError(.corrupt, "\(path): is not the file recorded here (its encryption header differs): it was replaced or damaged")
        }
        fileKey = EncryptedContainer.fileKey(key, salt: header.salt, context: context)
        let body = size - EncryptedContainer.headerBytes
        let stride = header.chunkBytes + EncryptedContainer.tagBytes
        guard body >= EncryptedContainer.tagBytes else { throw SextantError(.corrupt, "\(path): truncated: the encrypted file holds no whole chunk") }
        chunkCount = (body + stride - 1) / stride
        guard body - (chunkCount - 1) * stride >= EncryptedContainer.tagBytes else {
            throw SextantError(.corrupt, "\(path): truncated or extended: the last encrypted chunk is cut short (chunk \(chunkCount - 1))")
        }
        cipher = .allocate(byteCount: stride * max(1, (1 << 20) / stride), alignment: 64)
    }

    deinit { cipher.deallocate() }

    /// Reads up to `buffer.count` plaintext bytes; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SextantError) -> Int {
        if let failure { throw failure }
        while position == plain.count {
            if next == chunkCount { return 0 }
            do throws(SextantError) { try openNext() } catch {
                failure = error
                throw error
            }
        }
        let n = min(buffer.count, plain.count - position)
        plain.withUnsafeBytes { p in buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[position..<(position + n)])) }
        position += n
        return n
    }

    private func openNext() throws(SextantError) {
        let stride = header.chunkBytes + EncryptedContainer.tagBytes
        let offset = EncryptedContainer.headerBytes + next * stride
        let length = min(stride, size - offset)
        if !window.contains(offset) {
            let want = min(cipher.count, size - offset)
            let got = try io.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: cipher[0..<want]), at: Int64(offset), path: path)
            guard got == want else { throw SextantError(.corrupt, "\(path): chunk \(next): short read (did the file change?)") }
            window = offset..<(offset + want)
        }
        let start = cipher.baseAddress! + (offset - window.lowerBound)
        let isLast = next == chunkCount - 1
        let bodyLength = length - EncryptedContainer.tagBytes
        do {
            let box = try AES.GCM.SealedBox(
                nonce: EncryptedContainer.nonce(header.noncePrefix, UInt64(next)),
                ciphertext: Data(bytesNoCopy: start, count: bodyLength, deallocator: .none),
                tag: Data(bytesNoCopy: start + bodyLength, count: EncryptedContainer.tagBytes, deallocator: .none))
            plain = try AES.GCM.open(box, using: fileKey, authenticating: EncryptedContainer.aad(header.bytes, UInt64(next), final: isLast))
        } catch {
            throw SextantError(
                .corrupt,
                "\(path): chunk \(next) of \(chunkCount) (offset \(offset)) failed authentication: the file was modified, truncated or "
                    + "extended, or does not belong here")
        }
        position = 0
        next += 1
    }

    /// Reads (and authenticates) whatever is left, discarding it.
    func drain() throws(SextantError) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { scratch.deallocate() }
        while try read(into: scratch) > 0 {}
    }

    /// A C codec source (`sx_codec_source`) reading from the `DecryptingReader` passed as context.
    static let codecSource: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int) -> Int = { context, buffer, n in
        let r = Unmanaged<DecryptingReader>.fromOpaque(context!).takeUnretainedValue()
        do throws(SextantError) {
            return try r.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: n))
        } catch {
            r.failure = error
            return -1
        }
    }
}

/// Whole encrypted files: small ones (manifests) in memory, large ones (backup files) streamed.
/// (`package` for the fuzz harness, Sources/SextantFuzz.)
package enum EncryptedFile {
    /// Writes `bytes` sealed, atomically (temp name, fsync, rename). Returns the header's salt (hex).
    @discardableResult
    package static func write(io: any FileIO, _ path: String, _ bytes: [UInt8], key: EncryptionKey, context: String) throws(SextantError) -> String {
        try io.createAtomically(path) { (fd, tmp) throws(SextantError) in
            let w = EncryptingWriter(key: key, context: context) { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
            try bytes.withBytes { (b) throws(SextantError) in try w.write(b) }
            try w.finish()
            return w.header.saltHex
        }
    }

    /// Reads a small file that may be encrypted (a manifest): decrypted when it is a container, as is
    /// when not. `what` names the kind of thing in messages ("export", "backup", …).
    /// - Throws: ``SextantError/Code/invalidArgument`` when it is encrypted and `key` is nil, when the key
    ///   is wrong, and when a key is given and the file is not encrypted; ``SextantError/Code/corrupt`` on
    ///   any authentication failure.
    package static func read(io: any FileIO, _ path: String, key: EncryptionKey?, context: String, what: String) throws(SextantError) -> (bytes: [UInt8], encrypted: Bool) {
        let raw = try io.readFile(path)
        guard EncryptedContainer.isEncrypted(raw) else {
            if key != nil {
                // A plain manifest (JSON) is refused as such; anything else is a container whose magic was damaged.
                guard raw.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") else {
                    throw SextantError(.corrupt, "\(path): not an encrypted Sextant file (bad magic)")
                }
                throw SextantError(.invalidArgument, EncryptedContainer.notEncrypted(path, what))
            }
            return (raw, false)
        }
        guard let key else { throw SextantError(.invalidArgument, EncryptedContainer.keyRequired(path, what)) }
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        defer { io.close(fd) }
        let r = try DecryptingReader(io: io, fd: fd, path: path, key: key, context: context)
        var out: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let got = try r.read(into: buffer)
            if got == 0 { break }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
        }
        return (out, true)
    }

    /// Copies `from` into a new container at `to` (atomically, durably). Returns the plaintext's CRC-32C
    /// and the container's salt (hex).
    static func copyEncrypting(io: any FileIO, _ from: String, to: String, key: EncryptionKey, context: String) throws(SextantError) -> (crc: UInt32, salt: String) {
        var crc: UInt32 = 0
        let salt = try io.createAtomically(to) { (fd, tmp) throws(SextantError) in
            let w = EncryptingWriter(key: key, context: context) { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
            try Database.forEachChunk(io, of: from) { (slice) throws(SextantError) in
                crc = CRC32C.checksum(slice, seed: crc)
                try w.write(slice)
            }
            try w.finish()
            return w.header.saltHex
        }
        return (crc, salt)
    }

    /// Decrypts the container at `from`, authenticating every chunk, into `to` (atomically, durably) —
    /// or, with `to` nil, only checks it. Returns the plaintext's CRC-32C and size.
    @discardableResult
    package static func copyDecrypting(
        io: any FileIO, _ from: String, to: String?, key: EncryptionKey, context: String, salt: String?,
        progress: (Int) throws(SextantError) -> Void = { _ in }
    ) throws(SextantError) -> (crc: UInt32, bytes: Int) {
        let src = try io.open(from, flags: O_RDONLY, mode: 0)
        defer { io.close(src) }
        let reader = try DecryptingReader(io: io, fd: src, path: from, key: key, context: context, salt: salt)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var crc: UInt32 = 0
        var count = 0
        func pump(_ out: (UnsafeRawBufferPointer) throws(SextantError) -> Void) throws(SextantError) {
            while true {
                let got = try reader.readFully(into: buffer)
                if got == 0 { break }
                let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                crc = CRC32C.checksum(slice, seed: crc)
                count += got
                try out(slice)
                try progress(count)
            }
        }
        if let to {
            try io.createAtomically(to) { (fd, tmp) throws(SextantError) in
                try pump { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
            }
        } else {
            try pump { _ in }
        }
        return (crc, count)
    }
}

