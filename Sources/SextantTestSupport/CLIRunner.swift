// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation

/// Runs the built `sextant` executable (found beside the test bundle, or at $SEXTANT_BIN).
public struct CLIRunner: Sendable {
    public let executable: String
    public let database: String

    public init(database: String) {
        self.database = database
        if let env = ProcessInfo.processInfo.environment["SEXTANT_BIN"] {
            executable = env
        } else {
            let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            var dir = testBinary.deletingLastPathComponent()
            // On Linux the test binary is `<bin>/SextantPackageTests.xctest`; on Darwin it is inside a bundle.
            for _ in 0..<4 where !FileManager.default.fileExists(atPath: dir.appendingPathComponent("sextant").path) {
                dir.deleteLastPathComponent()
            }
            executable = dir.appendingPathComponent("sextant").path
        }
    }

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// Runs `sextant <subcommand> --db <database> args…` to completion.
    @discardableResult
    public func run(_ args: [String], environment: [String: String] = [:]) throws -> Output {
        try runRaw(args.first.map { [$0, "--db", database] + args.dropFirst() } ?? [], environment: environment)
    }

    /// Runs `sextant args…` exactly as given.
    @discardableResult
    public func runRaw(_ args: [String], environment: [String: String] = [:]) throws -> Output {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes concurrently so neither fills up and blocks the child.
        let errData = LockedData()
        let errThread = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        errThread.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !errData.isSet { usleep(1000) }
        return Output(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Starts `sextant` and returns the process with a stdout pipe, for tests that kill it mid-run.
    public func start(_ args: [String], environment: [String: String] = [:]) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args.first.map { [$0, "--db", database] + args.dropFirst() } ?? []
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        return (p, out)
    }
}

final class LockedData: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var data: Data?
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

/// Writes test data as JSON Lines: ids 0..<n, seeded vectors, small metadata, documents.
public func writeJSONLines(_ path: String, count: Int, dimension: Int, seed: UInt64) throws -> [[Float]] {
    let vectors = randomVectors(count, dimension: dimension, seed: seed)
    var text = ""
    text.reserveCapacity(count * dimension * 12)
    for (i, v) in vectors.enumerated() {
        text += "{\"id\":\(i),\"vector\":[" + v.map { "\($0)" }.joined(separator: ",") + "],\"metadata\":{\"n\":\(i),\"tag\":\"t\(i % 7)\"},\"document\":\"doc \(i)\"}\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return vectors
}

/// Writes a float32 `[n, d]` .npy file.
public func writeNPY(_ path: String, _ rows: [[Float]]) throws {
    let d = rows.first?.count ?? 0
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows.count), \(d)), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
    let hl = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(hl & 0xFF), UInt8(hl >> 8)])
    data.append(contentsOf: Array(header.utf8))
    for r in rows { r.withUnsafeBytes { data.append(contentsOf: $0) } }
    try data.write(to: URL(fileURLWithPath: path))
}
