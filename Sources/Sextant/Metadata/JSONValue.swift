// Sextant — an embedded vector database. Licensed under Apache-2.0.

import OrderedCollections

/// A JSON value: what a record's metadata is made of.
///
/// Numbers keep the distinction JSON text makes: a number written without fraction or exponent that fits
/// `Int64` is ``int(_:)``; every other number (with `.` or `e`, or an integer too large for `Int64`) is
/// ``double(_:)``. Objects keep their keys in the order they were written (``JSONParser`` rejects an object
/// with a duplicate key), and that order is part of equality: `{"a":1,"b":2}` and `{"b":2,"a":1}` are not `==`.
///
/// Equality follows the payloads: `.int(1) != .double(1)`, `.double(0) == .double(-0.0)` (as with `Double`),
/// and `.double(.nan)` is not equal to itself. ``JSONParser`` never produces a NaN or an infinity;
/// ``JSONWriter`` writes a non-finite `.double` as `null`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// An object. Key order is preserved.
    case object(OrderedDictionary<String, JSONValue>)
}

// MARK: - Accessors

extension JSONValue {
    /// The member named `key` when this is an object that has it; nil otherwise (also for non-objects).
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The element at `index` when this is an array and `index` is in range; nil otherwise.
    public subscript(index: Int) -> JSONValue? {
        if case .array(let elements) = self, elements.indices.contains(index) { return elements[index] }
        return nil
    }

    /// True for ``null``.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The payload of ``string(_:)``; nil for every other case.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The payload of ``int(_:)``; nil for every other case (a `.double` is not converted, even `3.0`).
    public var intValue: Int64? {
        if case .int(let v) = self { return v }
        return nil
    }

    /// The payload of ``double(_:)``, or an ``int(_:)`` converted to `Double` (rounded to nearest for
    /// magnitudes above 2^53); nil for every other case.
    public var doubleValue: Double? {
        switch self {
        case .double(let v): return v
        case .int(let v): return Double(v)
        default: return nil
        }
    }

    /// The payload of ``bool(_:)``; nil for every other case.
    public var boolValue: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The elements of ``array(_:)``; nil for every other case.
    public var arrayValue: [JSONValue]? {
        if case .array(let v) = self { return v }
        return nil
    }

    /// The members of ``object(_:)``; nil for every other case.
    public var objectValue: OrderedDictionary<String, JSONValue>? {
        if case .object(let v) = self { return v }
        return nil
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Keys keep the literal's order. A key written twice keeps its first position and its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var members = OrderedDictionary<String, JSONValue>(minimumCapacity: elements.count)
        for (key, value) in elements { members[key] = value }
        self = .object(members)
    }
}

// MARK: - Text

extension JSONValue: CustomStringConvertible {
    /// Compact JSON text (no spaces), as written by ``JSONWriter/write(_:into:)``.
    public var description: String {
        var out: [UInt8] = []
        JSONWriter.write(self, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Projection

extension JSONValue {
    /// Only the parts named by `keys`: `"a"` keeps member `a`, `"a.b"` keeps member `b` of object `a`.
    /// Members keep their order; keys that name nothing are skipped (the result is `{}` if none match).
    public func projected(_ keys: [String]) -> JSONValue {
        Self.project(self, keys.map { $0.split(separator: ".").map(String.init) }) ?? .object([:])
    }

    private static func project(_ value: JSONValue, _ paths: [[String]]) -> JSONValue? {
        if paths.contains(where: \.isEmpty) { return value }
        guard case .object(let members) = value else { return nil }
        var out = OrderedDictionary<String, JSONValue>()
        for (name, member) in members {
            let tails = paths.filter { $0.first == name }.map { Array($0.dropFirst()) }
            if tails.isEmpty { continue }
            if let kept = project(member, tails) { out[name] = kept }
        }
        return .object(out)
    }
}
