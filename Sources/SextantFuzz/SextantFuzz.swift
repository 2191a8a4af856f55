// Sextant — an embedded vector database. Licensed under Apache-2.0.

// libFuzzer harness for every parser of untrusted input (Docs/Reliability.md, "Fuzzing").
//
// Two builds of one target:
// - plain `swift build`: `sextant-fuzz <target> <file-or-dir>...` replays files through a target (the CI
//   regression check over Fuzz/Corpus and Fuzz/Regressions), and `sextant-fuzz seed <dir>` writes the seed
//   corpora from a small database;
// - `-Xswiftc -sanitize=fuzzer,address -Xswiftc -DSEXTANT_FUZZ -Xswiftc -parse-as-library` (Fuzz/run.sh):
//   libFuzzer's `main` calls `LLVMFuzzerTestOneInput`, and `SEXTANT_FUZZ_TARGET` names the target.
//
// A target throws `SextantError` for bad input (the expected outcome); it traps only on a bug: a crash, an
// out-of-bounds access (ASan), or a broken invariant checked with `check`.

import Foundation
import Sextant

#if canImport(Glibc)
    import Glibc
#endif

/// One fuzz target: a function of the input bytes.
struct FuzzTarget: Sendable {
    var name: String
    var summary: String
    var run: @Sendable (UnsafeRawBufferPointer) -> Void
}

/// Every target, by name. `-raw` variants take the file as it is (most mutations then fail a checksum);
/// the others first recompute the checksums the way the writer does, so the bytes reach the parsing behind them.
let allTargets: [FuzzTarget] = textTargets + storageTargets + backupTargets

/// Inputs that got past parsing into the code behind it (replay mode counts them: a seed corpus whose
/// files all stop at the first check tests nothing, so the replay fails then).
nonisolated(unsafe) var parsedInputs = 0
enum FuzzProgress { static func parsed() { parsedInputs += 1 } }

func findTarget(_ name: String) -> FuzzTarget? { allTargets.first { $0.name == name } }

/// Traps with a message when an invariant of a parser's output does not hold (a bug, not bad input).
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        FileHandle.standardError.write(Data("sextant-fuzz: invariant broken: \(message())\n".utf8))
        abort()
    }
}

#if SEXTANT_FUZZ
    nonisolated(unsafe) private var selected: FuzzTarget?

    /// libFuzzer's entry point for a program with its own `main` (LLVM 11+).
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// SwiftPM links an executable target with `main` aliased to `<Target>_main` (so tests can link the
    /// module), which takes the place of libFuzzer's `main`: this one hands over to libFuzzer's driver.
    @_cdecl("SextantFuzz_main")
    public func sextantFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var argc = argc
        var argv = argv
        return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzTestOneInput(data, size) }
    }

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        if selected == nil {
            let name = ProcessInfo.processInfo.environment["SEXTANT_FUZZ_TARGET"] ?? ""
            guard let t = findTarget(name) else {
                FileHandle.standardError.write(
                    Data("sextant-fuzz: set SEXTANT_FUZZ_TARGET to one of: \(allTargets.map(\.name).joined(separator: " "))\n".utf8))
                exit(2)
            }
            selected = t
        }
        selected!.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
#else
    @main
    struct SextantFuzzMain {
        static func main() {
            var args = Array(CommandLine.arguments.dropFirst())
            guard let command = args.first else { usage() }
            args.removeFirst()
            if command == "list" {
                for t in allTargets { print(t.name.padding(toLength: 16, withPad: " ", startingAt: 0) + t.summary) }
                return
            }
            if command == "seed" {
                guard args.count == 1 else { usage() }
                do { try writeSeeds(into: args[0]) } catch {
                    FileHandle.standardError.write(Data("sextant-fuzz: seed: \(error)\n".utf8))
                    exit(1)
                }
                return
            }
            guard let target = findTarget(command), !args.isEmpty else { usage() }
            var files = 0, deep = 0
            for arg in args {
                for file in inputFiles(arg) {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        FileHandle.standardError.write(Data("sextant-fuzz: cannot read \(file)\n".utf8))
                        exit(1)
                    }
                    // A trap here is the failure: the file's name is printed first so the log names it.
                    if ProcessInfo.processInfo.environment["SEXTANT_FUZZ_VERBOSE"] != nil { print("\(target.name) \(file)") }
                    let before = parsedInputs
                    data.withUnsafeBytes { target.run($0) }
                    files += 1
                    if parsedInputs > before { deep += 1 }
                }
            }
            print("\(target.name): \(files) file(s) replayed, \(deep) parsed, no crash")
            if files > 0 && deep == 0 {
                FileHandle.standardError.write(Data("sextant-fuzz: \(target.name): no input got past parsing: the corpus is stale\n".utf8))
                exit(1)
            }
        }

        static func inputFiles(_ path: String) -> [String] {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
            guard isDir.boolValue else { return [path] }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted().flatMap { inputFiles(path + "/" + $0) }
        }

        static func usage() -> Never {
            print(
                """
                usage: sextant-fuzz <target> <file-or-directory>...   replay inputs through a target
                       sextant-fuzz seed <directory>                   write seed corpora (<directory>/<target>/…)
                       sextant-fuzz list                               list the targets
                """)
            exit(2)
        }
    }
#endif
