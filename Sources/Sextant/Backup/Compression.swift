// Sextant — an embedded vector database. Licensed under Apache-2.0.

import CSextantCodecs

#if canImport(Glibc)
    import Glibc
#endif

/// How export and backup files are compressed.
public enum Compression: String, Sendable, Hashable, Codable, CaseIterable {
    case none
    /// gzip (zlib, level 6): readable by `gunzip` and Python's `gzip`.
    case gzip
    /// zstd (level 3): needs libzstd at run time.
    case zstd

    /// The file name suffix: "", ".gz" or ".zst".
    public var suffix: String {
        switch self {
        case .none: return ""
        case .gzip: return ".gz"
        case .zstd: return ".zst"
        }
    }

    var codec: Int32 {
        switch self {
        case .none: return 0
        case .gzip: return Int32(SX_CODEC_GZIP)
        case .zstd: return Int32(SX_CODEC_ZSTD)
        }
    }

    /// Throws when the codec cannot be used here (zstd without libzstd), with what to do about it.
    public func checkAvailable() throws(SextantError) {
        guard self != .none else { return }
        var err = [CChar](repeating: 0, count: 256)
        if sx_codec_available(codec, &err, err.count) == 0 {
            throw SextantError(.invalidArgument, String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }
}

private func message(_ err: [CChar]) -> String {
    String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Writes a file atomically (temp name, fsync, rename) through an optional compressor, then an optional
/// encryptor (compress, then encrypt: ciphertext does not compress), keeping the CRC-32C and size of the
/// uncompressed content. Bytes are buffered in 1 MiB blocks.
final class ContentWriter {
    let path: String
    let io: any FileIO
    private let tmp: String
    private let fd: Int32
    private var codec: OpaquePointer?
    private let encryptor: EncryptingWriter?
    private var buffer: [UInt8] = []
    private(set) var crc: UInt32 = 0
    private(set) var count = 0
    private var finished = false

    /// - Parameter encryption: the key, and the file's name within its export (bound into the file's key).
    init(io: any FileIO, path: String, compression: Compression, encryption: (key: EncryptionKey, context: String)? = nil) throws(SextantError) {
        self.io = io
        self.path = path
        tmp = path + ".tmp"
        let fd = try io.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        self.fd = fd
        let tmp = self.tmp
        encryptor = encryption.map { e in
            EncryptingWriter(key: e.key, context: e.context) { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
        }
        if compression != .none {
            var err = [CChar](repeating: 0, count: 256)
            let level: Int32 = compression == .gzip ? 6 : 3
            let w: OpaquePointer?
            if let encryptor {
                w = sx_codec_writer_open_sink(compression.codec, EncryptingWriter.codecSink, Unmanaged.passUnretained(encryptor).toOpaque(), level, &err, err.count)
            } else {
                w = sx_codec_writer_open(compression.codec, fd, level, &err, err.count)
            }
            guard let w else {
                // Every property is set, so deinit runs after this throw: `finished` keeps it from closing
                // the descriptor a second time (by then the number may belong to another file).
                finished = true
                io.close(fd)
                try? io.unlink(tmp)
                throw SextantError(.invalidArgument, "\(path): \(message(err))")
            }
            codec = w
        }
        buffer.reserveCapacity(1 << 20)
    }

    /// The salt of the file's encryption header (hex), which the manifest records; nil when not encrypted.
    var encryptionSalt: String? { encryptor?.header.saltHex }

    /// The error a codec's output callback raised, if any, else one made from the codec's message.
    private func codecError(_ err: [CChar]) -> SextantError {
        if let e = encryptor?.failure { return e }
        return SextantError(message(err).contains("No space") ? .diskFull : .io, "\(path): \(message(err))")
    }

    deinit {
        if !finished { abandon() }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(SextantError) {
        crc = CRC32C.checksum(bytes, seed: crc)
        count += bytes.count
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try drain() }
    }

    func write(_ bytes: [UInt8]) throws(SextantError) {
        try bytes.withBytes { (b) throws(SextantError) in try write(b) }
    }

    private func drain() throws(SextantError) {
        if buffer.isEmpty { return }
        if let codec {
            var err = [CChar](repeating: 0, count: 256)
            let rc = buffer.withUnsafeBytes { sx_codec_write(codec, $0.baseAddress, $0.count, &err, err.count) }
            if rc != 0 { throw codecError(err) }
        } else if let encryptor {
            try buffer.withBytes { (b) throws(SextantError) in try encryptor.write(b) }
        } else {
            try buffer.withBytes { (b) throws(SextantError) in try io.write(fd, b, path: tmp) }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, finishes the compressed stream, fsyncs and renames into place.
    func finish() throws(SextantError) {
        do throws(SextantError) {
            try drain()
            if let codec {
                self.codec = nil
                var err = [CChar](repeating: 0, count: 256)
                if sx_codec_writer_close(codec, &err, err.count) != 0 { throw codecError(err) }
            }
            try encryptor?.finish()
            try io.fsync(fd, path: tmp)
            io.close(fd)
            finished = true
            try io.rename(tmp, to: path)
        } catch {
            if !finished { abandon() } else { try? io.unlink(tmp) }
            throw error
        }
    }

    /// Drops the temporary file.
    func abandon() {
        if finished { return }
        finished = true
        if let codec {
            var err = [CChar](repeating: 0, count: 256)
            _ = sx_codec_writer_close(codec, &err, err.count)
            self.codec = nil
        }
        io.close(fd)
        try? io.unlink(tmp)
    }
}

/// Reads a file's content through an optional decryptor, then an optional decompressor, keeping the
/// CRC-32C and size of what it returned, so a caller can check a file against its manifest in the same
/// pass that uses its bytes. With decryption, every byte returned has been authenticated.
final class ContentReader: ChunkSource {
    let path: String
    let io: any FileIO
    private let fd: Int32
    private var codec: OpaquePointer?
    private let decryptor: DecryptingReader?
    private var offset: Int64 = 0
    private(set) var crc: UInt32 = 0
    private(set) var count = 0
    private var ownsDescriptor = true

    /// - Parameter decryption: the key, the file's name within its export (bound into its key) and the
    ///   salt its manifest recorded for it.
    init(io: any FileIO, path: String, compression: Compression, decryption: (key: EncryptionKey, context: String, salt: String?)? = nil) throws(SextantError) {
        self.io = io
        self.path = path
        let fd = try io.open(path, flags: O_RDONLY, mode: 0)
        self.fd = fd
        do throws(SextantError) {
            decryptor = try decryption.map { (d) throws(SextantError) in
                try DecryptingReader(io: io, fd: fd, path: path, key: d.key, context: d.context, salt: d.salt)
            }
        } catch {
            io.close(fd)
            throw error
        }
        if compression != .none {
            var err = [CChar](repeating: 0, count: 256)
            let r: OpaquePointer?
            if let decryptor {
                r = sx_codec_reader_open_source(compression.codec, DecryptingReader.codecSource, Unmanaged.passUnretained(decryptor).toOpaque(), &err, err.count)
            } else {
                r = sx_codec_reader_open(compression.codec, fd, &err, err.count)
            }
            guard let r else {
                // deinit runs after this throw (every property is set): it must not close `fd` again.
                ownsDescriptor = false
                io.close(fd)
                throw SextantError(.invalidArgument, "\(path): \(message(err))")
            }
            codec = r
        }
    }

    deinit {
        if let codec { sx_codec_reader_close(codec) }
        if ownsDescriptor { io.close(fd) }
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the content.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SextantError) -> Int {
        guard !buffer.isEmpty else { return 0 }
        let got: Int
        if let codec {
            var err = [CChar](repeating: 0, count: 256)
            let n = sx_codec_read(codec, buffer.baseAddress, buffer.count, &err, err.count)
            if n < 0 { throw decryptor?.failure ?? SextantError(.corrupt, "\(path): \(message(err))") }
            got = n
        } else if let decryptor {
            got = try decryptor.read(into: buffer)
        } else {
            got = try io.pread(fd, into: buffer, at: offset, path: path)
            offset += Int64(got)
        }
        crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), seed: crc)
        count += got
        return got
    }


    /// Reads (and checksums) whatever is left.
    func drain() throws(SextantError) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { scratch.deallocate() }
        while try read(into: scratch) > 0 {}
    }
}

/// Decrypts and decompresses `path` (or copies it, when neither) to `to`, returning the content's CRC-32C and size.
func decompress(
    io: any FileIO, _ path: String, compression: Compression, decryption: (key: EncryptionKey, context: String, salt: String?)? = nil, to: String
) throws(SextantError) -> (crc: UInt32, bytes: Int) {
    if compression == .none && decryption == nil {
        let crc = try Database.copyWithChecksum(io, path, to: to)
        return (crc, try fileSize(io, to))
    }
    let reader = try ContentReader(io: io, path: path, compression: compression, decryption: decryption)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    defer { buffer.deallocate() }
    try io.createAtomically(to) { (fd, tmp) throws(SextantError) in
        while true {
            let got = try reader.read(into: buffer)
            if got == 0 { break }
            try io.write(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<got]), path: tmp)
        }
    }
    return (reader.crc, reader.count)
}

/// A stream read in pieces: a decompressing or decrypting reader.
protocol ChunkSource {
    /// Reads the next bytes into `buffer`; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SextantError) -> Int
}

extension ChunkSource {
    /// Fills `buffer` unless the content ends first; returns the bytes read.
    func readFully(into buffer: UnsafeMutableRawBufferPointer) throws(SextantError) -> Int {
        var done = 0
        while done < buffer.count {
            let got = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if got == 0 { break }
            done += got
        }
        return done
    }
}
