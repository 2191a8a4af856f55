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

/// Writes a file atomically (temp name, fsync, rename) through an optional compressor, keeping the CRC-32C
/// and size of the uncompressed content. Bytes are buffered in 1 MiB blocks.
final class ContentWriter {
    let path: String
    let io: any FileIO
    private let tmp: String
    private let fd: Int32
    private var codec: OpaquePointer?
    private var buffer: [UInt8] = []
    private(set) var crc: UInt32 = 0
    private(set) var count = 0
    private var finished = false

    init(io: any FileIO, path: String, compression: Compression) throws(SextantError) {
        self.io = io
        self.path = path
        tmp = path + ".tmp"
        fd = try io.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        if compression != .none {
            var err = [CChar](repeating: 0, count: 256)
            guard let w = sx_codec_writer_open(compression.codec, fd, compression == .gzip ? 6 : 3, &err, err.count) else {
                io.close(fd)
                try? io.unlink(tmp)
                throw SextantError(.invalidArgument, "\(path): \(message(err))")
            }
            codec = w
        }
        buffer.reserveCapacity(1 << 20)
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
            if rc != 0 { throw SextantError(message(err).contains("No space") ? .diskFull : .io, "\(path): \(message(err))") }
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
                if sx_codec_writer_close(codec, &err, err.count) != 0 { throw SextantError(.io, "\(path): \(message(err))") }
            }
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

/// Reads a file's content through an optional decompressor, keeping the CRC-32C and size of what it
/// returned, so a caller can check a file against its manifest in the same pass that uses its bytes.
final class ContentReader {
    let path: String
    let io: any FileIO
    private let fd: Int32
    private var codec: OpaquePointer?
    private var offset: Int64 = 0
    private(set) var crc: UInt32 = 0
    private(set) var count = 0

    init(io: any FileIO, path: String, compression: Compression) throws(SextantError) {
        self.io = io
        self.path = path
        fd = try io.open(path, flags: O_RDONLY, mode: 0)
        if compression != .none {
            var err = [CChar](repeating: 0, count: 256)
            guard let r = sx_codec_reader_open(compression.codec, fd, &err, err.count) else {
                io.close(fd)
                throw SextantError(.invalidArgument, "\(path): \(message(err))")
            }
            codec = r
        }
    }

    deinit {
        if let codec { sx_codec_reader_close(codec) }
        io.close(fd)
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the content.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SextantError) -> Int {
        guard !buffer.isEmpty else { return 0 }
        let got: Int
        if let codec {
            var err = [CChar](repeating: 0, count: 256)
            let n = sx_codec_read(codec, buffer.baseAddress, buffer.count, &err, err.count)
            if n < 0 { throw SextantError(.corrupt, "\(path): \(message(err))") }
            got = n
        } else {
            got = try io.pread(fd, into: buffer, at: offset, path: path)
            offset += Int64(got)
        }
        crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), seed: crc)
        count += got
        return got
    }

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

    /// Reads (and checksums) whatever is left.
    func drain() throws(SextantError) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { scratch.deallocate() }
        while try read(into: scratch) > 0 {}
    }
}

/// Decompresses `path` (or copies it, uncompressed) to `to`, returning the content's CRC-32C and size.
func decompress(io: any FileIO, _ path: String, compression: Compression, to: String) throws(SextantError) -> (crc: UInt32, bytes: Int) {
    if compression == .none {
        let crc = try Database.copyWithChecksum(io, path, to: to)
        return (crc, try fileSize(io, to))
    }
    let reader = try ContentReader(io: io, path: path, compression: compression)
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
