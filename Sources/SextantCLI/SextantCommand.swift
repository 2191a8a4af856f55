// Sextant — an embedded vector database. Licensed under Apache-2.0.

import ArgumentParser
import Foundation
import Synchronization
import Sextant

#if canImport(Glibc)
import Glibc
#endif

@main
struct SextantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sextant",
        abstract: "An embedded vector database: durable collections, vector / full-text / hybrid search with filters, import and verification.",
        discussion: """
            The database is a directory: --db PATH, else $SEXTANT_DB, else ./sextant-data.
            Errors go to stderr as one line "error: …" with exit status 1; --json switches output to \
            machine-readable JSON (strict JSON: a score that is not a finite number is written as null).

            Record ids: all digits = an integer id (at most 18446744073709551615; more digits are an \
            error, not a string id), i:N = integer id N, s:TEXT = string id TEXT, anything else = a \
            string id; --string-id / --string-ids take the text as a string id whatever it looks like.

            Limits: search limit + offset ≤ 100000, --ef ≤ 100000, import --batch ≤ 1000000 records and \
            ≤ 1 GiB encoded, vector norms ≤ 1e18 (≥ 1e-18 under cosine), --dim 1…65536.
            """,
        version: "0.1.0",
        subcommands: [
            Demo.self, Create.self, Collections.self, Info.self, Drop.self, Import.self, Upsert.self, Get.self,
            Delete.self, Count.self, Scroll.self, Search.self, IndexCommand.self, SnapshotCommand.self, Export.self, Restore.self, Transfer.self, BackupCommand.self, VerifyBackup.self, Keygen.self, Flush.self, Compact.self, Verify.self, Repair.self,
        ]
    )

    /// Global options may come before the subcommand (`sextant --db DIR count docs`); ArgumentParser only
    /// accepts a subcommand's options after its name, so move them there.
    static func main() {
        let args = hoistingGlobalOptions(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(args)
            try command.run()
        } catch {
            // Help, --version and ExitCode keep ArgumentParser's handling; a usage error (a missing value, a
            // number that does not fit, an unknown option) is reported like every other error: one line
            // "error: …" on stderr and exit status 1 (ArgumentParser would print "Error:" and exit 64).
            if error is ExitCode || exitCode(for: error) == .success { exit(withError: error) }
            fail(message(for: error) + " (see sextant help)")
        }
    }

    static func hoistingGlobalOptions(_ args: [String]) -> [String] {
        // Global options before the (leaf) subcommand move after it: `--db X index create …` and
        // `index --db X create …` both become `index create --db X …`.
        let groups: Set<String> = ["index", "snapshot"]
        var leading: [String] = []
        var path: [String] = []
        var rest = args[...]
        while let first = rest.first {
            if first == "--json" || first == "--read-damaged" {
                leading.append(first)
                rest = rest.dropFirst()
            } else if first == "--db", rest.count >= 2 {
                leading += rest.prefix(2)
                rest = rest.dropFirst(2)
            } else if first.hasPrefix("--db=") {
                leading.append(first)
                rest = rest.dropFirst()
            } else if !first.hasPrefix("-") && (path.isEmpty || groups.contains(path.last!)) {
                path.append(first)
                rest = rest.dropFirst()
            } else {
                break
            }
        }
        return path + leading + rest
    }
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Database directory (default: $SEXTANT_DB or ./sextant-data).")
    var db: String?

    @Flag(name: .long, help: "Machine-readable JSON output.")
    var json = false

    @Flag(name: .long, help: "Open damaged collections read-only, with what can be read up to the damage (see `sextant repair`).")
    var readDamaged = false

    var databasePath: String {
        db ?? ProcessInfo.processInfo.environment["SEXTANT_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "./sextant-data"
    }
}

/// Runs `body` with the opened database; turns Sextant errors into "error: …" on stderr and exit status 1.
/// Commands that only read open it read-only: they change nothing on disk (no recovery writes, no
/// background work) and run beside each other.
func withDatabase<T>(_ options: GlobalOptions, readOnly: Bool = false, _ body: (Database) throws -> T) throws -> T {
    do {
        var config = Configuration()
        config.readOnly = readOnly
        config.readDamagedCollections = options.readDamaged
        // Tuning knob (and crash tests use it to force frequent flushes).
        if let text = ProcessInfo.processInfo.environment["SEXTANT_MEMTABLE_BYTES"], !text.isEmpty {
            // The memtable's vector storage is allocated up front: bound it.
            guard let bytes = Int(text), (4096...(1 << 36)).contains(bytes) else {
                fail("SEXTANT_MEMTABLE_BYTES must be a number of bytes between 4096 and \(1 << 36) (64 GiB), not \(SextantError.quoted(text))")
            }
            config.memtableBytes = bytes
        }
        let db = try Database.open(at: options.databasePath, configuration: config)
        defer { db.close() }
        return try body(db)
    } catch let error as SextantError {
        fail(error.message)
    }
}

/// Prints "error: MESSAGE" on stderr and exits with status 1. The message is one line of printable text:
/// control characters (from user input echoed in it) are escaped.
func fail(_ message: String) -> Never {
    Output.flush()
    FileHandle.standardError.write(Data(("error: " + SextantError.escapingNonPrintables(message) + "\n").utf8))
    exit(1)
}

/// Buffered stdout writer (print() is slow for bulk JSON Lines).
enum Output {
    nonisolated(unsafe) static var buffer: [UInt8] = []

    static func write(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count > 1 << 16 { flush() }
    }

    static func line(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        buffer.append(10)
        if buffer.count > 1 << 16 { flush() }
    }

    static func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { b in
            var done = 0
            while done < b.count {
                let n = Glibc.write(1, b.baseAddress! + done, b.count - done)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                done += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// JSON encoding of ids, records and hits for output.
enum JSONOut {
    static func id(_ id: RecordID, into out: inout [UInt8]) {
        switch id {
        case .int(let v): out.append(contentsOf: String(v).utf8)
        case .string(let s): JSONWriter.write(.string(s), into: &out)
        }
    }

    static func record(_ r: StoredRecord, into out: inout [UInt8]) {
        out.append(contentsOf: Array(#"{"id":"#.utf8))
        id(r.id, into: &out)
        payload(metadata: r.metadata, document: r.document, vector: r.vector, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// A hit as one JSON object. Scores go through ``JSONWriter/writeFloat(_:into:)``: a score that is not
    /// a finite number (only possible for records stored before vector norms were limited, whose distances
    /// overflow Float32) is written as `null`, so the output is always strict JSON.
    static func hit(_ h: SearchHit, into out: inout [UInt8]) {
        out.append(contentsOf: Array(#"{"id":"#.utf8))
        id(h.id, into: &out)
        out.append(contentsOf: Array(#","score":"#.utf8))
        JSONWriter.writeFloat(h.score, into: &out)
        payload(metadata: h.metadata, document: h.document, vector: h.vector, into: &out)
        if let e = h.explanation {
            out.append(contentsOf: Array(#","explain":{"#.utf8))
            var first = true
            func field(_ name: String, _ write: (inout [UInt8]) -> Void) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out.append(contentsOf: Array("\"\(name)\":".utf8))
                write(&out)
            }
            if let s = e.vectorScore { field("vector_score") { JSONWriter.writeFloat(s, into: &$0) } }
            if let r = e.vectorRank { field("vector_rank") { $0.append(contentsOf: String(r).utf8) } }
            if let s = e.textScore { field("text_score") { JSONWriter.writeFloat(s, into: &$0) } }
            if let r = e.textRank { field("text_rank") { $0.append(contentsOf: String(r).utf8) } }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `value` as a JSON string literal (quoted and escaped), for JSON lines built around it.
    static func string(_ value: some CustomStringConvertible) -> String {
        var out: [UInt8] = []
        JSONWriter.writeString(value.description, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The optional fields shared by records and hits.
    private static func payload(metadata: JSONValue?, document: String?, vector: [Float]?, into out: inout [UInt8]) {
        if let m = metadata {
            out.append(contentsOf: Array(#","metadata":"#.utf8))
            JSONWriter.write(m, into: &out)
        }
        if let d = document {
            out.append(contentsOf: Array(#","document":"#.utf8))
            JSONWriter.write(.string(d), into: &out)
        }
        if let v = vector {
            out.append(contentsOf: Array(#","vector":"#.utf8))
            v.withUnsafeBufferPointer { JSONWriter.writeFloats($0, into: &out) }
        }
    }

    /// Writes records as JSON Lines to stdout.
    static func writeRecords(_ records: [StoredRecord]) {
        for r in records {
            var out: [UInt8] = []
            record(r, into: &out)
            out.append(10)
            Output.write(out)
        }
    }

    static func encode<T: Encodable>(_ value: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }
}

/// Parses an id argument: `s:TEXT` → string id, `i:N` → integer id, all digits → integer id (an error past
/// UInt64.max, as in JSON Lines imports), anything else → string id; with `forceString`, always a string.
func parseID(_ text: String, forceString: Bool = false) -> RecordID {
    if forceString { return .string(text) }
    if text.hasPrefix("s:") { return .string(String(text.dropFirst(2))) }
    if text.hasPrefix("i:") {
        let digits = text.dropFirst(2)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt64(digits) else {
            fail("id \(SextantError.quoted(text)): i: must be followed by the digits of an integer id, at most \(UInt64.max)")
        }
        return .int(v)
    }
    do throws(SextantError) { return try RecordID(parsing: text) } catch {
        fail(error.message + ": write s:\(text.count > 40 ? "TEXT" : text) or pass --string-id(s) for a string id")
    }
}

/// Parses a vector argument such as `[0.1, 0.2]`. Numbers beyond Float32's range become infinities, which
/// the collection then refuses (naming the value's index).
func parseVector(_ text: String) -> [Float] {
    let parsed: JSONValue
    do { parsed = try Array(text.utf8).withUnsafeBytes { try JSONParser.parse($0) } } catch {
        fail("--vector is not valid JSON: \((error as? SextantError)?.message ?? "\(error)")")
    }
    guard case .array(let items) = parsed else { fail("--vector must be a JSON array of numbers") }
    return items.enumerated().map { i, v in
        switch v {
        case .int(let x): return Float(x)
        case .double(let x): return Float(x)
        default: fail("--vector[\(i)] is not a number")
        }
    }
}

/// Progress of a long operation on stderr: a line with count, rate and ETA when stderr is a terminal
/// (`auto`, the default, or `bar`), JSON Lines events (`json`), or nothing (`none`).
struct ProgressLine {
    enum Mode: String { case auto, bar, json, none }
    let total: Int?
    let start = Date()
    let mode: Mode
    var last = Date.distantPast

    init(total: Int?, mode: Mode = .auto) {
        self.total = total
        self.mode = mode == .auto ? (isatty(2) != 0 ? .bar : .none) : mode
    }

    mutating func update(_ done: Int, bytes: Int? = nil, phase: String = "records", force: Bool = false) {
        guard mode == .bar || mode == .json else { return }
        let now = Date()
        guard force || now.timeIntervalSince(last) > (mode == .json ? 0.5 : 0.2) else { return }
        last = now
        let elapsed = max(1e-6, now.timeIntervalSince(start))
        let rate = Double(done) / elapsed
        let eta = total.flatMap { t in rate > 0 ? Double(max(0, t - done)) / rate : nil }
        if mode == .json {
            var fields = [#""phase":"\#(phase)""#, #""records":\#(done)"#, String(format: #""elapsed_s":%.3f"#, elapsed), String(format: #""records_per_s":%.1f"#, rate)]
            if let total { fields.append(#""total":\#(total)"#) }
            if let bytes { fields.append(#""bytes":\#(bytes)"#) }
            if let eta { fields.append(String(format: #""eta_s":%.1f"#, eta)) }
            FileHandle.standardError.write(Data(("{" + fields.joined(separator: ",") + "}\n").utf8))
            return
        }
        var text = "\r\(done)"
        if let total, total > 0 {
            let frac = min(1, Double(done) / Double(total))
            let width = 30
            let filled = Int(frac * Double(width))
            text += "/\(total) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
            if let eta { text += String(format: " ETA %.0fs", eta) }
        }
        text += String(format: " %.0f records/s", rate)
        if let bytes { text += String(format: " %.1f MB/s", Double(bytes) / elapsed / 1e6) }
        FileHandle.standardError.write(Data((text + "  ").utf8))
    }

    func finish() {
        if mode == .bar { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Set by SIGINT while a long operation runs; its progress callback then throws, and the operation
/// cleans up (no partial destination, the source untouched).
let interruptRequested = Atomic<Bool>(false)

/// Routes Ctrl-C to `interruptRequested` for the duration of `body`.
func cancellableOnInterrupt<R>(_ body: () throws -> R) rethrows -> R {
    interruptRequested.store(false, ordering: .relaxed)
    let previous = signal(SIGINT) { _ in interruptRequested.store(true, ordering: .relaxed) }
    // A parent may have started us with SIGINT blocked (the mask is inherited); take it.
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
    defer { signal(SIGINT, previous) }
    return try body()
}

struct Interrupted: Error {}

/// Throws when Ctrl-C was pressed.
func checkInterrupt() throws {
    if interruptRequested.load(ordering: .relaxed) { throw Interrupted() }
}
