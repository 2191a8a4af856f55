// TEMPORARY placeholder until the real JSON files land.
import Foundation
import OrderedCollections
public enum JSONValue: Sendable, Hashable {
    case null, bool(Bool), int(Int64), double(Double), string(String)
    case array([JSONValue]), object(OrderedDictionary<String, JSONValue>)
}
public enum JSONParser {
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(SextantError) -> JSONValue {
        guard let o = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else { throw SextantError(.parse, "bad json") }
        return conv(o)
    }
    static func conv(_ o: Any) -> JSONValue {
        if o is NSNull { return .null }
        if let s = o as? String { return .string(s) }
        if let n = o as? NSNumber { if String(cString: n.objCType) == "c" { return .bool(n.boolValue) }; if let i = Int64(exactly: n.doubleValue), !"\(n)".contains(".") { return .int(i) }; return .double(n.doubleValue) }
        if let a = o as? [Any] { return .array(a.map(conv)) }
        if let d = o as? [String: Any] { var r = OrderedDictionary<String, JSONValue>(); for k in d.keys.sorted() { r[k] = conv(d[k]!) }; return .object(r) }
        return .null
    }
}
public enum JSONWriter {
    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .int(let i): out += Array(String(i).utf8)
        case .double(let d): out += Array("\(d)".utf8)
        case .string(let s): let d = try! JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed]); out += Array(d)
        case .array(let a): out.append(UInt8(ascii: "[")); for (i, v) in a.enumerated() { if i > 0 { out.append(44) }; write(v, into: &out) }; out.append(UInt8(ascii: "]"))
        case .object(let o): out.append(UInt8(ascii: "{")); for (i, (k, v)) in o.enumerated() { if i > 0 { out.append(44) }; write(.string(k), into: &out); out.append(58); write(v, into: &out) }; out.append(UInt8(ascii: "}"))
        }
    }
    public static func writeFloats(_ v: UnsafeBufferPointer<Float>, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "[")); for (i, f) in v.enumerated() { if i > 0 { out.append(44) }; out += Array(f.description.utf8) }; out.append(UInt8(ascii: "]"))
    }
}
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByArrayLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral v: String) { self = .string(v) }
    public init(integerLiteral v: Int64) { self = .int(v) }
    public init(floatLiteral v: Double) { self = .double(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(nilLiteral: ()) { self = .null }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { var d = OrderedDictionary<String, JSONValue>(); for (k, v) in elements { d[k] = v }; self = .object(d) }
}
