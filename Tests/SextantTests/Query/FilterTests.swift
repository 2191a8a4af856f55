// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import OrderedCollections
@testable import Sextant
import SextantTestSupport
import Testing

/// An independent evaluator of the filter semantics documented on ``Filter`` and ``Condition``, written
/// without the library's key-path or matching code, to check the engine against.
enum FilterOracle {
    static func values(_ root: JSONValue?, _ key: String) -> [JSONValue] {
        guard let root else { return [] }
        var cur: [JSONValue] = [root]
        for part in key.split(separator: ".") {
            var name = String(part)
            var expansions = 0
            while name.hasSuffix("[]") {
                name.removeLast(2)
                expansions += 1
            }
            var next: [JSONValue] = []
            for v in cur {
                if case .object(let o) = v, let m = o[name] { next.append(m) }
                if case .array(let a) = v {
                    for e in a { if case .object(let o) = e, let m = o[name] { next.append(m) } }
                }
            }
            for _ in 0..<expansions {
                next = next.flatMap { v -> [JSONValue] in
                    if case .array(let a) = v { return a }
                    return []
                }
            }
            cur = next
        }
        return cur.flatMap { v -> [JSONValue] in
            if case .array(let a) = v { return a }
            return [v]
        }
    }

    static func same(_ f: FilterValue, _ v: JSONValue) -> Bool {
        switch f {
        case .keyword(let s): return v == .string(s)
        case .integer(let i): return v == .int(i)
        case .bool(let b): return v == .bool(b)
        }
    }

    static func inRange(_ x: Double, _ r: RangeBounds) -> Bool {
        (r.gt.map { x > $0.value } ?? true) && (r.gte.map { x >= $0.value } ?? true)
            && (r.lt.map { x < $0.value } ?? true) && (r.lte.map { x <= $0.value } ?? true)
    }

    static func words(_ s: String) -> [String] {
        s.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }

    static func holds(_ c: Condition, _ id: RecordID, _ m: JSONValue?) -> Bool {
        switch c {
        case .match(let key, let match):
            let vs = values(m, key)
            switch match {
            case .value(let f): return vs.contains { same(f, $0) }
            case .any(let fs): return vs.contains { v in fs.contains { same($0, v) } }
            case .except(let fs): return vs.contains { v in v != .null && !fs.contains { same($0, v) } }
            case .text(let t):
                let strings = vs.compactMap(\.stringValue)
                return !strings.isEmpty && Set(strings.flatMap(words)).isSuperset(of: words(t))
            }
        case .range(let key, let r):
            if r.isDatetime {
                return values(m, key).contains { v in
                    if case .string(let s) = v, let d = ISO8601DateFormatter().date(from: s) { return inRange(d.timeIntervalSince1970, r) }
                    return false
                }
            }
            return values(m, key).contains { v in
                switch v {
                case .int(let i): return inRange(Double(i), r)
                case .double(let d): return inRange(d, r)
                default: return false
                }
            }
        case .valuesCount(let key, let r): return inRange(Double(values(m, key).filter { $0 != .null }.count), r)
        case .isEmpty(let key): return values(m, key).allSatisfy { $0 == .null }
        case .isNull(let key): return values(m, key).contains(.null)
        case .hasID(let ids): return ids.contains(id)
        case .nested(let key, let f): return values(m, key).contains { e in
                if case .object = e { return holds(f, id, e) }
                return false
            }
        case .filter(let f): return holds(f, id, m)
        }
    }

    static func holds(_ f: Filter, _ id: RecordID, _ m: JSONValue?) -> Bool {
        f.must.allSatisfy { holds($0, id, m) }
            && !f.mustNot.contains { holds($0, id, m) }
            && (f.should.isEmpty || f.should.contains { holds($0, id, m) })
            && (f.minShould.map { ms in ms.conditions.filter { holds($0, id, m) }.count >= ms.minCount } ?? true)
    }
}

/// Random metadata with nested objects, arrays, nulls and missing keys; random filters over it.
struct FilterFuzz {
    var rng: RepeatableRandomNumberGenerator
    static let sections = ["games", "libs", "net", "doc", "admin", "sound"]
    static let tags = ["a", "b", "c", "d", "e"]
    static let words = ["fast", "Vector", "database", "naïve", "東京", "search", "disk", "the"]

    mutating func int(_ r: ClosedRange<Int>) -> Int { Int(rng.next() % UInt64(r.count)) + r.lowerBound }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 10_000) < p * 10_000 }
    mutating func pick<T>(_ a: [T]) -> T { a[int(0...a.count - 1)] }

    mutating func metadata() -> JSONValue? {
        if chance(0.05) { return nil }
        var o: [(String, JSONValue)] = []
        if !chance(0.15) { o.append(("section", chance(0.05) ? .null : .string(pick(Self.sections)))) }
        if !chance(0.2) {
            o.append(("n", chance(0.1) ? .null : chance(0.3) ? .double(Double(int(0...990)) / 10) : .int(Int64(int(0...99)))))
        }
        if !chance(0.2) {
            o.append(("tags", .array((0..<int(0...3)).map { _ in chance(0.1) ? .null : .string(pick(Self.tags)) })))
        }
        if !chance(0.3) {
            var inner: [(String, JSONValue)] = [("x", .int(Int64(int(0...9))))]
            if chance(0.7) { inner.append(("y", .string(pick(Self.tags)))) }
            o.append(("obj", .object(.init(uniqueKeysWithValues: inner))))
        }
        if !chance(0.3) {
            o.append(("items", .array((0..<int(0...3)).map { _ in
                .object(["k": .string(pick(Self.tags)), "v": .int(Int64(int(0...5)))])
            })))
        }
        if !chance(0.2) {
            let day = int(1...28), month = int(1...12), year = int(2020...2024)
            o.append(("when", .string(String(format: "%04d-%02d-%02dT%02d:00:00Z", year, month, day, int(0...23)))))
        }
        if !chance(0.2) { o.append(("flag", chance(0.15) ? .null : .bool(chance(0.5)))) }
        if !chance(0.2) { o.append(("title", .string((0..<int(1...4)).map { _ in pick(Self.words) }.joined(separator: chance(0.5) ? " " : ", ")))) }
        return .object(.init(uniqueKeysWithValues: o))
    }

    mutating func scalar(_ key: String) -> FilterValue {
        switch key {
        case "section": return .keyword(pick(Self.sections))
        case "n", "obj.x", "items[].v": return .integer(Int64(int(0...99) % (key == "n" ? 100 : 10)))
        case "flag": return .bool(chance(0.5))
        default: return .keyword(pick(Self.tags))
        }
    }

    mutating func condition(depth: Int) -> Condition {
        let keys = ["section", "n", "tags", "obj.x", "obj.y", "items[].k", "items[].v", "flag", "items.k"]
        switch int(0...(depth > 0 ? 11 : 9)) {
        case 0, 1: let k = pick(keys); return .match(k, scalar(k))
        case 2: let k = pick(keys); return .matchAny(k, [scalar(k), scalar(k)])
        case 3: let k = pick(keys); return .matchExcept(k, [scalar(k)])
        case 4:
            let lo = Double(int(0...60))
            return chance(0.5) ? .range("n", gte: lo, lt: lo + Double(int(1...50))) : .range("obj.x", gt: Double(int(0...8)))
        case 5:
            let y = int(2020...2024)
            return .range(key: "when", RangeBounds(gte: .datetime(RFC3339.seconds("\(y)-06-01T00:00:00Z")!)))
        case 6: return .valuesCount(key: pick(["tags", "items"]), RangeBounds(gte: .number(Double(int(0...2)))))
        case 7: return chance(0.5) ? .isEmpty(key: pick(keys + ["missing"])) : .isNull(key: pick(["section", "n", "flag", "tags"]))
        case 8: return .text("title", pick(Self.words) + (chance(0.3) ? " " + pick(Self.words) : ""))
        case 9: return .hasID(Set((0..<int(1...40)).map { _ in RecordID.int(UInt64(int(0...1499))) }))
        case 10: return .nested(key: "items", Filter(must: [.match("k", scalar("tags")), .range("v", gte: Double(int(0...3)))]))
        default: return .filter(filter(depth: depth - 1))
        }
    }

    mutating func filter(depth: Int) -> Filter {
        var f = Filter()
        for _ in 0..<int(0...2) { f.must.append(condition(depth: depth)) }
        if chance(0.4) { for _ in 0..<int(1...3) { f.should.append(condition(depth: depth)) } }
        if chance(0.3) { f.mustNot.append(condition(depth: depth)) }
        if chance(0.1) { f.minShould = .init(conditions: (0..<3).map { _ in condition(depth: depth) }, minCount: int(1...2)) }
        return f
    }
}

@Suite struct FilterTests {
    @Test func qdrantJSONParsesIntoTheSameTreeAsTheBuilder() throws {
        let json = """
            {"must":[{"key":"section","match":{"value":"games"}},{"key":"n","range":{"gte":10,"lt":20.5}}],
             "should":[{"key":"tags","match":{"any":["a","b"]}},{"is_empty":{"key":"obj"}}],
             "must_not":[{"has_id":[1,"x"]},{"must":[{"key":"flag","match":{"value":true}}]}],
             "min_should":{"conditions":[{"key":"when","range":{"gt":"2024-01-01T00:00:00Z"}},{"is_null":{"key":"n"}}],"min_count":1}}
            """
        let f = try Filter(json: json)
        #expect(f.must == [.match("section", "games"), .range("n", gte: 10, lt: 20.5)])
        #expect(f.should == [.matchAny("tags", ["a", "b"]), .isEmpty(key: "obj")])
        #expect(f.mustNot == [.hasID([.int(1), .string("x")]), .filter(.must(.match("flag", true)))])
        #expect(f.minShould?.minCount == 1)
        #expect(f.minShould?.conditions.first == .range(key: "when", RangeBounds(gt: .datetime(1_704_067_200))))
    }

    @Test(arguments: [
        (#"{"must":[{"key":"a","match":{"valeu":1}}]}"#, "filter.must[0].match.valeu"),
        (#"{"must":[{"key":"a"}]}"#, "filter.must[0]"),
        (#"{"must":[{"key":"a","range":{"gt":"yesterday"}}]}"#, "filter.must[0].range.gt"),
        (#"{"should":[{},{"key":"a","match":{"value":1.5}}]}"#, "filter.should[0]"),
        (#"{"should":[{"key":"a","match":{"value":1.5}}]}"#, "filter.should[0].match.value"),
        (#"{"must_not":{"has_id":[-1]}}"#, "filter.must_not.has_id[0]"),
        (#"{"mustt":[]}"#, "filter.mustt"),
        (#"{"min_should":{"conditions":[]}}"#, "filter.min_should"),
        (#"{"must":[{"key":"a..b","match":{"value":1}}]}"#, "filter.must[0].key"),
        (#"{"must":[{"key":"n","range":{"gt":1,"lt":"2024-01-01"}}]}"#, "filter.must[0].range"),
        (#"{"must":[{"nested":{"key":"items"}}]}"#, "filter.must[0].nested"),
        (#"[1]"#, "filter"),
    ])
    func malformedFiltersAreRejectedNamingTheOffendingPart(json: String, part: String) {
        do {
            _ = try Filter(json: json)
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix(part + ":"), "\(error.message)")
        }
        #expect(throws: SextantError.self) { try Filter(json: "{\"must\": [") }
    }

    @Test func datetimesFollowRFC3339() {
        #expect(RFC3339.seconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.seconds("2024-02-29") == 1_709_164_800)
        #expect(RFC3339.seconds("2024-02-29T01:00:00+01:00") == 1_709_164_800)
        #expect(RFC3339.seconds("2024-02-29 00:00:00.5Z") == 1_709_164_800.5)
        #expect(RFC3339.seconds("2023-02-29") == nil)
        #expect(RFC3339.seconds("2024-13-01") == nil)
        #expect(RFC3339.seconds("2024-01-01T00:00:00Zjunk") == nil)
    }

    @Test func theTokenizerSplitsOnNonLettersAndLowercases() {
        #expect(Tokenizer.default.tokens("Naïve café, x86_64 東京!") == ["naïve", "café", "x86", "64", "東京"])
        #expect(Tokenizer(stopWords: ["the"]).tokens("The THE fox") == ["fox"])
    }

    /// The byte-level tokenizer the index builder uses gives exactly the words of the string one, on
    /// random text mixing ASCII, accented letters, CJK, digits and punctuation, with and without stop words.
    @Test func theByteTokenizerAgreesWithTheStringTokenizer() {
        var rng = RepeatableRandomNumberGenerator(seed: 77)
        let ascii = Array("abcXYZ019 ,.-_!?\n\t").map(String.init)
        let alphabet = ascii + Array("éÉß東京ı").map(String.init)
        for stop in [Tokenizer.default, Tokenizer(stopWords: ["abc", "x"])] {
            for i in 0..<1000 {
                let alphabet = i % 2 == 0 ? ascii : alphabet
                let text = (0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
                var viaBytes: [String] = []
                var t = text
                t.withUTF8 { u in stop.forEachToken(utf8: UnsafeRawBufferPointer(u)) { viaBytes.append(String(decoding: $0, as: UTF8.self)) } }
                #expect(viaBytes == stop.tokens(text), "\(text.debugDescription)")
            }
        }
    }

    @Test func keyPathsReachIntoObjectsAndArrays() throws {
        let m = try JSONParser.parse(#"{"a":{"b":[1,2]},"items":[{"k":"x"},{"k":"y"},{"z":1}],"grid":[[1,2],[3]]}"#)
        #expect(try KeyPath("a.b").values(in: m) == [.int(1), .int(2)])
        #expect(try KeyPath("items[].k").values(in: m) == [.string("x"), .string("y")])
        #expect(try KeyPath("items.k").values(in: m) == [.string("x"), .string("y")])
        #expect(try KeyPath("grid[]").values(in: m) == [.int(1), .int(2), .int(3)])
        #expect(try KeyPath("missing.x").values(in: m) == [])
    }

    /// Hundreds of random filters over random metadata: search (exact and graph), count, scroll and
    /// delete select exactly what the oracle selects, with the records in the memtable, in segments with
    /// graphs plus the memtable, and after compaction.
    /// With `indexed`, every field the filters touch has a payload index, so conditions are answered from
    /// the segments' index files (the memtable is still evaluated row by row).
    @Test(arguments: [UInt64(11), 12], [false, true])
    func randomFiltersSelectExactlyWhatTheOracleSelects(seed: UInt64, indexed: Bool) throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        var config = Configuration()
        config.memtableBytes = 8 * 4 * 300
        config.backgroundWork = false
        let db = try Database.open(at: dir.path, configuration: config)
        defer { db.close() }
        let c = try db.createCollection(
            "f", dimension: 8, metric: .euclidean, index: IndexConfiguration(neighborsPerNode: 8, indexingSearchCount: 48, minimumRowsForGraph: 100))
        if indexed {
            let specs: [(String, PayloadIndexType)] = [
                ("section", .keyword), ("n", .integer), ("obj.x", .float), ("obj.y", .keyword), ("flag", .bool), ("when", .datetime),
                ("title", .text), ("tags", .keyword), ("items[].k", .keyword), ("items[].v", .integer),
            ]
            for (key, type) in specs { try c.createPayloadIndex(key, type: type) }
            #expect(c.payloadIndexes.count == specs.count)
        }
        var fuzz = FilterFuzz(rng: RepeatableRandomNumberGenerator(seed: seed))
        let vectors = randomVectors(1500, dimension: 8, seed: seed)
        var metadata: [RecordID: JSONValue?] = [:]
        var records: [Record] = []
        for i in 0..<1500 {
            let m = fuzz.metadata()
            metadata[.int(UInt64(i))] = m
            records.append(Record(id: .int(UInt64(i)), vector: vectors[i], metadata: m))
        }
        try c.upsert(Array(records[0..<700]))

        var nonTrivial = 0, total = 0
        func check(_ stage: String, cases: Int) throws {
            let live = Set(try c.scroll(limit: 10_000, include: []).records.map(\.id))
            for n in 0..<cases {
                let f = fuzz.filter(depth: 2)
                let expected = Set(live.filter { FilterOracle.holds(f, $0, metadata[$0] ?? nil) })
                total += 1
                if expected.count > 0 && expected.count < live.count { nonTrivial += 1 }
                #expect(try c.count(filter: f) == expected.count, "\(stage) case \(n): count, \(f)")
                var scrolled: [RecordID] = []
                var after: RecordID?
                repeat {
                    let page = try c.scroll(after: after, limit: 97, filter: f, include: [])
                    scrolled += page.records.map(\.id)
                    after = page.nextAfter
                } while after != nil
                #expect(scrolled == expected.sorted(), "\(stage) case \(n): scroll, \(f)")
                let q = randomVectors(1, dimension: 8, seed: seed &* 1000 &+ UInt64(n))[0]
                let truth = expected.sorted { a, b in
                    guard case .int(let x) = a, case .int(let y) = b else { return false }
                    return bruteForceScore(.euclidean, q, vectors[Int(x)]) < bruteForceScore(.euclidean, q, vectors[Int(y)])
                }
                let exact = try c.search(q, limit: 10, filter: f, exact: true)
                #expect(exact.map(\.id) == Array(truth.prefix(10)), "\(stage) case \(n): exact search, \(f)")
                let approx = try c.search(q, limit: 10, filter: f, ef: 64)
                #expect(approx.count == min(10, expected.count), "\(stage) case \(n): graph search returned \(approx.count) of \(expected.count)")
                #expect(approx.allSatisfy { expected.contains($0.id) }, "\(stage) case \(n): graph search returned a record failing the filter")
            }
        }
        try check("memtable", cases: 40)
        try c.flush()
        try c.upsert(Array(records[700..<1500]))
        try c.flush()
        try c.upsert(Array(records[0..<50]))  // re-upserted: the old rows are deleted in their segment
        try c.waitForIndexing()
        #expect(try c.info().segments.contains { $0.index == "graph" })
        try check("segments + memtable", cases: 50)
        try c.compact()
        try c.waitForIndexing()
        try check("compacted", cases: 40)
        // The generated filters select something and not everything most of the time.
        #expect(nonTrivial * 10 >= total * 6, "\(nonTrivial) of \(total) filters were neither empty nor everything")
        if indexed {
            // Every segment carries the fields in its index file.
            let view = try c.readView()
            #expect(view.segments.allSatisfy { $0.payload?.fields.count == 11 })
        }

        // Delete by filter removes exactly the matching records, durably.
        for _ in 0..<5 {
            let f = fuzz.filter(depth: 1)
            let live = Set(try c.scroll(limit: 10_000, include: []).records.map(\.id))
            let doomed = live.filter { FilterOracle.holds(f, $0, metadata[$0] ?? nil) }
            #expect(try c.delete(filter: f) == doomed.count)
            let after = Set(try c.scroll(limit: 10_000, include: []).records.map(\.id))
            #expect(after == live.subtracting(doomed))
        }
    }
}
