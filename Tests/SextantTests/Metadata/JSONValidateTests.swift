// Sextant — an embedded vector database. Licensed under Apache-2.0.

@testable import Sextant
import SextantTestSupport
import Testing

/// The bulk-import validator must accept and reject exactly what the tree parser does.
@Suite struct JSONValidateTests {
    func randomJSON(_ rng: inout RepeatableRandomNumberGenerator, depth: Int = 0) -> String {
        switch Int.random(in: 0..<(depth > 4 ? 5 : 8), using: &rng) {
        case 0: return "null"
        case 1: return Bool.random(using: &rng) ? "true" : "false"
        case 2: return String(Int.random(in: -100_000...100_000, using: &rng))
        case 3: return String(Double.random(in: -1e6...1e6, using: &rng))
        case 4: return ["\"a\"", "\"é\\n\"", "\"\\u00e9x\"", "\"\"", "\"tab\\tq\\\"\""].randomElement(using: &rng)!
        case 5, 6:
            let n = Int.random(in: 0...4, using: &rng)
            let keys = ["a", "b", "c", "a", "d\\u0041", "é"].shuffled(using: &rng).prefix(n)
            return "{" + keys.map { "\"\($0)\" : " + randomJSON(&rng, depth: depth + 1) }.joined(separator: ",") + "}"
        default:
            let n = Int.random(in: 0...4, using: &rng)
            return "[ " + (0..<n).map { _ in randomJSON(&rng, depth: depth + 1) }.joined(separator: ", ") + "]"
        }
    }

    func outcome(_ bytes: [UInt8], validate: Bool) -> String {
        bytes.withUnsafeBytes { raw in
            var s = JSONScanner(raw, lineNumber: 1)
            do throws(SextantError) {
                if validate { try s.validateValue(depth: 0) } else { _ = try s.parseValue(depth: 0) }
                return "ok \(s.pos)"
            } catch {
                return error.message
            }
        }
    }

    @Test func validatorAgreesWithTheParser() {
        var rng = RepeatableRandomNumberGenerator(seed: 5)
        var rejected = 0
        for _ in 0..<4000 {
            var bytes = Array(randomJSON(&rng).utf8)
            if Bool.random(using: &rng), !bytes.isEmpty {
                // Corrupt it: flip, delete or insert a structural byte.
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = Array("{}[],:\"\\x0".utf8).randomElement(using: &rng)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(Array(",}]\"".utf8).randomElement(using: &rng)!, at: i)
                }
            }
            let a = outcome(bytes, validate: true)
            let b = outcome(bytes, validate: false)
            #expect(a == b, "\(String(decoding: bytes, as: UTF8.self))")
            if !a.hasPrefix("ok") { rejected += 1 }
        }
        #expect(rejected > 500)  // the corruption really produced invalid inputs
    }

    @Test func rawMetadataRoundTripsThroughImportParsing() throws {
        let line = Array(#"{"id":1,"vector":[1,2],"metadata":{"tags":["x","y"], "n" : 3.5e2,"s":"\u00e9"},"document":"d"}"#.utf8)
        let r = try line.withBytes { (b) throws(SextantError) in try JSONLinesReader.parseRecordLineKeepingMetadataBytes(b, lineNumber: 1) }
        let raw = try #require(r.metadataJSON)
        #expect(try JSONParser.parse(raw) == JSONParser.parse(#"{"tags":["x","y"],"n":350.0,"s":"é"}"#))
        let dup = Array(#"{"id":1,"vector":[1],"metadata":{"a":1,"a":2}}"#.utf8)
        #expect(throws: SextantError.self) {
            try dup.withBytes { (b) throws(SextantError) in _ = try JSONLinesReader.parseRecordLineKeepingMetadataBytes(b, lineNumber: 1) }
        }
    }
}
