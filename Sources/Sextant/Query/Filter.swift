// Sextant — an embedded vector database. Licensed under Apache-2.0.

import Foundation
import OrderedCollections

/// A condition on records, over their metadata and ids: the clause object of Qdrant's filter language.
///
/// A filter holds when every ``must`` condition holds, at least one ``should`` condition holds (when there
/// are any), no ``mustNot`` condition holds, and at least `minCount` of ``minShould``'s conditions hold.
/// Clauses nest: a ``Condition/filter(_:)`` is a whole filter used as one condition. The empty filter
/// holds for every record.
///
/// Build one in Swift, or parse Qdrant's JSON with ``init(json:)``:
///
/// ```swift
/// let f = Filter.must(.match("section", "games"), .range("size", gte: 1000))
/// let g = try Filter(json: #"{"must":[{"key":"section","match":{"value":"games"}}]}"#)
/// ```
public struct Filter: Sendable, Hashable {
    public var must: [Condition]
    public var should: [Condition]
    public var mustNot: [Condition]
    /// At least `minCount` of `conditions` hold.
    public var minShould: MinShould?

    public struct MinShould: Sendable, Hashable {
        public var conditions: [Condition]
        public var minCount: Int
        public init(conditions: [Condition], minCount: Int) {
            self.conditions = conditions
            self.minCount = minCount
        }
    }

    public init(must: [Condition] = [], should: [Condition] = [], mustNot: [Condition] = [], minShould: MinShould? = nil) {
        self.must = must
        self.should = should
        self.mustNot = mustNot
        self.minShould = minShould
    }

    /// Every condition holds (AND).
    public static func must(_ conditions: Condition...) -> Filter { Filter(must: conditions) }
    /// At least one condition holds (OR).
    public static func should(_ conditions: Condition...) -> Filter { Filter(should: conditions) }
    /// No condition holds (NOT (a OR b …)).
    public static func mustNot(_ conditions: Condition...) -> Filter { Filter(mustNot: conditions) }

    /// True when the filter places no constraint.
    public var isEmpty: Bool { must.isEmpty && should.isEmpty && mustNot.isEmpty && minShould == nil }
}

/// One condition of a ``Filter``.
public indirect enum Condition: Sendable, Hashable {
    /// A value at `key` matches (see ``Match``).
    case match(key: String, Match)
    /// A number (or, with datetime bounds, an RFC 3339 datetime) at `key` lies in the range.
    case range(key: String, RangeBounds)
    /// The number of values at `key` (elements of an array; 1 for a single value; nulls not counted) lies
    /// in the range.
    case valuesCount(key: String, RangeBounds)
    /// `key` is missing, null, or an empty array (no value other than null).
    case isEmpty(key: String)
    /// A value at `key` is null (`{"k": null}`, or a null element of an array at `key`).
    case isNull(key: String)
    /// The record's id is one of these.
    case hasID(Set<RecordID>)
    /// Some element of the array of objects at `key` satisfies `filter` on its own (each element is
    /// tested as a whole, so conditions cannot be satisfied by different elements).
    case nested(key: String, Filter)
    /// A whole filter as one condition.
    case filter(Filter)

    /// `key` has the value (string, integer or boolean).
    public static func match(_ key: String, _ value: FilterValue) -> Condition { .match(key: key, .value(value)) }
    /// `key` has one of the values.
    public static func matchAny(_ key: String, _ values: [FilterValue]) -> Condition { .match(key: key, .any(values)) }
    /// `key` has a (non-null) value that is none of these.
    public static func matchExcept(_ key: String, _ values: [FilterValue]) -> Condition { .match(key: key, .except(values)) }
    /// Every word of `text` occurs in the strings at `key` (words as ``Tokenizer`` splits them).
    public static func text(_ key: String, _ text: String) -> Condition { .match(key: key, .text(text)) }
    /// A number at `key` lies in the range.
    public static func range(_ key: String, gt: Double? = nil, gte: Double? = nil, lt: Double? = nil, lte: Double? = nil) -> Condition {
        .range(key: key, RangeBounds(gt: gt.map(Bound.number), gte: gte.map(Bound.number), lt: lt.map(Bound.number), lte: lte.map(Bound.number)))
    }
    /// A datetime at `key` (an RFC 3339 string) lies in the range.
    public static func datetimeRange(_ key: String, gt: Date? = nil, gte: Date? = nil, lt: Date? = nil, lte: Date? = nil) -> Condition {
        func b(_ d: Date?) -> Bound? { d.map { .datetime($0.timeIntervalSince1970) } }
        return .range(key: key, RangeBounds(gt: b(gt), gte: b(gte), lt: b(lt), lte: b(lte)))
    }
}

/// A scalar a ``Match`` compares with: strings match strings, integers integers, booleans booleans.
public enum FilterValue: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case keyword(String)
    case integer(Int64)
    case bool(Bool)

    public init(stringLiteral value: String) { self = .keyword(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }

    @inline(__always)
    func equals(_ v: JSONValue) -> Bool {
        switch (self, v) {
        case (.keyword(let a), .string(let b)): return a == b
        case (.integer(let a), .int(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        default: return false
        }
    }
}

/// What a ``Condition/match(key:_:)`` asks of the values at its key.
public enum Match: Sendable, Hashable {
    /// Some value equals this.
    case value(FilterValue)
    /// Some value equals one of these.
    case any([FilterValue])
    /// Some non-null value equals none of these (a missing field does not match).
    case except([FilterValue])
    /// The words of the string values (taken together) include every word of this text.
    case text(String)
}

/// A bound of a range: a number, or a datetime (seconds since 1970-01-01T00:00:00Z).
public enum Bound: Sendable, Hashable {
    case number(Double)
    case datetime(Double)

    var value: Double {
        switch self {
        case .number(let v), .datetime(let v): return v
        }
    }
}

/// Bounds of a range; absent bounds do not constrain.
public struct RangeBounds: Sendable, Hashable {
    public var gt: Bound?
    public var gte: Bound?
    public var lt: Bound?
    public var lte: Bound?

    public init(gt: Bound? = nil, gte: Bound? = nil, lt: Bound? = nil, lte: Bound? = nil) {
        self.gt = gt
        self.gte = gte
        self.lt = lt
        self.lte = lte
    }

    /// Whether the bounds are datetimes (they are all of one kind; the parser checks).
    var isDatetime: Bool {
        for b in [gt, gte, lt, lte] {
            if case .datetime = b { return true }
        }
        return false
    }

    @inline(__always)
    func contains(_ x: Double) -> Bool {
        if let gt, !(x > gt.value) { return false }
        if let gte, !(x >= gte.value) { return false }
        if let lt, !(x < lt.value) { return false }
        if let lte, !(x <= lte.value) { return false }
        return true
    }
}

// MARK: - Key paths

/// A parsed metadata key: `a.b` walks into objects, `a[]` into the elements of an array. Walking into an
/// array with a plain key also visits its elements (`tags.name` on `{"tags":[{"name":…},…]}`); an array
/// at the end of the path gives its elements as the values.
package struct KeyPath: Hashable, Sendable {
    package enum Step: Hashable, Sendable {
        case key(String)
        case elements
    }
    package let steps: [Step]
    package let text: String

    package init(_ text: String) throws(SextantError) {
        self.text = text
        var steps: [Step] = []
        if text.isEmpty { throw SextantError(.invalidArgument, "an empty key") }
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            var name = Substring(part)
            var expand = 0
            while name.hasSuffix("[]") {
                name = name.dropLast(2)
                expand += 1
            }
            if name.isEmpty && (steps.isEmpty || expand == 0) {
                throw SextantError(.invalidArgument, "key '\(text)' has an empty part")
            }
            if !name.isEmpty { steps.append(.key(String(name))) }
            for _ in 0..<expand { steps.append(.elements) }
        }
        self.steps = steps
    }

    /// The values at this path: every value reached, with arrays at the end flattened one level.
    package func values(in root: JSONValue) -> [JSONValue] {
        var current: [JSONValue] = [root]
        for step in steps {
            var next: [JSONValue] = []
            for v in current {
                switch step {
                case .key(let k):
                    switch v {
                    case .object(let members):
                        if let m = members[k] { next.append(m) }
                    case .array(let elements):
                        for case .object(let members) in elements {
                            if let m = members[k] { next.append(m) }
                        }
                    default: break
                    }
                case .elements:
                    if case .array(let elements) = v { next.append(contentsOf: elements) }
                }
            }
            current = next
            if current.isEmpty { return [] }
        }
        var out: [JSONValue] = []
        for v in current {
            if case .array(let elements) = v { out.append(contentsOf: elements) } else { out.append(v) }
        }
        return out
    }
}

// MARK: - Evaluation

/// A filter prepared for evaluation: key paths parsed, text conditions tokenized.
package struct CompiledFilter: Sendable {
    package indirect enum Node: Sendable {
        case match(KeyPath, Match, textTokens: [String], tokenizer: Tokenizer)
        case range(KeyPath, RangeBounds)
        case valuesCount(KeyPath, RangeBounds)
        case isEmpty(KeyPath)
        case isNull(KeyPath)
        case hasID(Set<RecordID>)
        case nested(KeyPath, Clause)
        case clause(Clause)
    }
    package struct Clause: Sendable {
        var must: [Node]
        var should: [Node]
        var mustNot: [Node]
        var minShould: (nodes: [Node], count: Int)?
    }
    package let root: Clause
    /// Whether any condition reads metadata (has_id alone does not).
    let readsMetadata: Bool

    /// `tokenizer` splits the text of `match` text conditions, on both sides: the collection's, so text
    /// conditions agree with its `text` payload indexes (stop words included).
    package init(_ filter: Filter, tokenizer: Tokenizer = .default) throws(SextantError) {
        root = try Self.compile(filter, tokenizer)
        readsMetadata = Self.reads(root)
    }

    private static func compile(_ f: Filter, _ t: Tokenizer) throws(SextantError) -> Clause {
        var must: [Node] = [], should: [Node] = [], mustNot: [Node] = []
        for c in f.must { must.append(try compile(c, t)) }
        for c in f.should { should.append(try compile(c, t)) }
        for c in f.mustNot { mustNot.append(try compile(c, t)) }
        var minShould: ([Node], Int)?
        if let m = f.minShould {
            var nodes: [Node] = []
            for c in m.conditions { nodes.append(try compile(c, t)) }
            minShould = (nodes, m.minCount)
        }
        return Clause(must: must, should: should, mustNot: mustNot, minShould: minShould)
    }

    private static func compile(_ c: Condition, _ tokenizer: Tokenizer) throws(SextantError) -> Node {
        switch c {
        case .match(let key, let m):
            var tokens: [String] = []
            if case .text(let t) = m { tokens = tokenizer.tokens(t) }
            return .match(try KeyPath(key), m, textTokens: tokens, tokenizer: tokenizer)
        case .range(let key, let r): return .range(try KeyPath(key), r)
        case .valuesCount(let key, let r): return .valuesCount(try KeyPath(key), r)
        case .isEmpty(let key): return .isEmpty(try KeyPath(key))
        case .isNull(let key): return .isNull(try KeyPath(key))
        case .hasID(let ids): return .hasID(ids)
        case .nested(let key, let f): return .nested(try KeyPath(key), try compile(f, tokenizer))
        case .filter(let f): return .clause(try compile(f, tokenizer))
        }
    }

    package static func reads(_ c: Clause) -> Bool {
        let all = c.must + c.should + c.mustNot + (c.minShould?.nodes ?? [])
        return all.contains { n in
            switch n {
            case .hasID: return false
            case .clause(let inner): return reads(inner)
            default: return true
            }
        }
    }

    /// Whether a record with this id and metadata (nil: none) passes.
    package func matches(id: RecordID, metadata: JSONValue?) -> Bool {
        Self.eval(root, id, metadata ?? .object([:]))
    }

    package static func eval(_ c: Clause, _ id: RecordID, _ m: JSONValue) -> Bool {
        for n in c.must where !eval(n, id, m) { return false }
        for n in c.mustNot where eval(n, id, m) { return false }
        if !c.should.isEmpty && !c.should.contains(where: { eval($0, id, m) }) { return false }
        if let (nodes, count) = c.minShould {
            var hits = 0
            for n in nodes where eval(n, id, m) { hits += 1 }
            if hits < count { return false }
        }
        return true
    }

    package static func eval(_ n: Node, _ id: RecordID, _ m: JSONValue) -> Bool {
        switch n {
        case .match(let path, let match, let tokens, let tokenizer):
            let values = path.values(in: m)
            switch match {
            case .value(let v): return values.contains { v.equals($0) }
            case .any(let set): return values.contains { x in set.contains { $0.equals(x) } }
            case .except(let set): return values.contains { x in !x.isNull && !set.contains { $0.equals(x) } }
            case .text:
                // The words of all the string values together must include every word of the text.
                var have = Set<String>()
                var any = false
                for case .string(let s) in values {
                    any = true
                    tokenizer.forEachToken(s) { have.insert($0) }
                }
                return any && tokens.allSatisfy { have.contains($0) }
            }
        case .range(let path, let r):
            let datetime = r.isDatetime
            return path.values(in: m).contains { v in
                if datetime {
                    guard case .string(let s) = v, let t = RFC3339.seconds(s) else { return false }
                    return r.contains(t)
                }
                guard let x = v.doubleValue else { return false }
                return r.contains(x)
            }
        case .valuesCount(let path, let r):
            return r.contains(Double(path.values(in: m).filter { !$0.isNull }.count))
        case .isEmpty(let path):
            return !path.values(in: m).contains { !$0.isNull }
        case .isNull(let path):
            return path.values(in: m).contains { $0.isNull }
        case .hasID(let ids):
            return ids.contains(id)
        case .nested(let path, let clause):
            return path.values(in: m).contains { element in
                if case .object = element { return eval(clause, id, element) }
                return false
            }
        case .clause(let inner):
            return eval(inner, id, m)
        }
    }
}

// MARK: - Datetimes

/// RFC 3339 datetimes, as Qdrant accepts them: `2024-05-01T12:30:00Z`, with a fractional second and a
/// `±hh:mm` offset optional, a space allowed for `T`, and a date alone meaning midnight UTC.
enum RFC3339 {
    /// Seconds since 1970-01-01T00:00:00Z, or nil if `text` is not such a datetime.
    static func seconds(_ text: String) -> Double? {
        let b = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2),
            (1...12).contains(month), day >= 1, day <= daysIn(month, year)
        else { return nil }
        var seconds = Double(daysFromCivil(year, month, day)) * 86_400
        if i == b.count { return seconds }
        guard b[i] == 0x54 || b[i] == 0x74 || b[i] == 0x20 else { return nil }  // T, t, space
        i += 1
        guard let h = digits(2), expect(0x3A), let mi = digits(2), expect(0x3A), let s = digits(2),
            h < 24, mi < 60, s < 61
        else { return nil }
        seconds += Double(h * 3600 + mi * 60 + s)
        if i < b.count, b[i] == 0x2E {
            i += 1
            var scale = 0.1
            var any = false
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                seconds += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
                any = true
            }
            if !any { return nil }
        }
        if i == b.count { return seconds }  // no offset: UTC
        if b[i] == 0x5A || b[i] == 0x7A {  // Z
            return i + 1 == b.count ? seconds : nil
        }
        guard b[i] == 0x2B || b[i] == 0x2D else { return nil }
        let sign: Double = b[i] == 0x2B ? 1 : -1
        i += 1
        guard let oh = digits(2), expect(0x3A), let om = digits(2), i == b.count, oh < 24, om < 60 else { return nil }
        return seconds - sign * Double(oh * 3600 + om * 60)
    }

    private static func daysIn(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
