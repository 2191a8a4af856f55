// Sextant — an embedded vector database. Licensed under Apache-2.0.

/// Qdrant's filter JSON → ``Filter``. Every error names the offending part as a path from the root,
/// e.g. `filter.must[1].range.gt: expected a number or an RFC 3339 datetime string, found true`.
extension Filter {
    /// Parses Qdrant's filter JSON (`{"must": […], "should": […], "must_not": […], "min_should": {…}}`).
    /// - Throws: ``SextantError/Code/parse`` for text that is not JSON; ``SextantError/Code/invalidArgument``
    ///   naming the part that is not a valid filter.
    public init(json: String) throws(SextantError) {
        let value: JSONValue
        do { value = try JSONParser.parse(json) } catch {
            throw SextantError(.parse, "filter: not valid JSON: \(error.message)")
        }
        try self.init(jsonValue: value)
    }

    /// Builds a filter from parsed Qdrant filter JSON.
    public init(jsonValue: JSONValue) throws(SextantError) {
        self = try FilterJSON.filter(jsonValue, "filter")
    }
}

private enum FilterJSON {
    static func fail(_ path: String, _ message: String) -> SextantError {
        SextantError(.invalidArgument, "\(path): \(message)")
    }

    static func describe(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return "\"\(s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    static func object(_ v: JSONValue, _ path: String) throws(SextantError) -> [(String, JSONValue)] {
        guard case .object(let members) = v else { throw fail(path, "expected an object, found \(describe(v))") }
        return members.map { ($0.key, $0.value) }
    }

    static func filter(_ v: JSONValue, _ path: String) throws(SextantError) -> Filter {
        var f = Filter()
        for (key, value) in try object(v, path) {
            let p = path + "." + key
            switch key {
            case "must": f.must = try conditions(value, p)
            case "should": f.should = try conditions(value, p)
            case "must_not": f.mustNot = try conditions(value, p)
            case "min_should":
                var conds: [Condition]?
                var count: Int?
                for (k, x) in try object(value, p) {
                    switch k {
                    case "conditions": conds = try conditions(x, p + ".conditions")
                    case "min_count":
                        guard case .int(let n) = x, n >= 0 else { throw fail(p + ".min_count", "expected a non-negative integer, found \(describe(x))") }
                        count = Int(n)
                    default: throw fail(p + "." + k, "unknown key (expected \"conditions\" or \"min_count\")")
                    }
                }
                guard let conds else { throw fail(p, "\"conditions\" is missing") }
                guard let count else { throw fail(p, "\"min_count\" is missing") }
                f.minShould = Filter.MinShould(conditions: conds, minCount: count)
            default:
                throw fail(p, "unknown key (a filter has \"must\", \"should\", \"must_not\" and \"min_should\")")
            }
        }
        return f
    }

    /// A clause's conditions: an array, or (as Qdrant accepts) a single condition object.
    static func conditions(_ v: JSONValue, _ path: String) throws(SextantError) -> [Condition] {
        switch v {
        case .array(let items):
            var out: [Condition] = []
            for (i, item) in items.enumerated() { out.append(try condition(item, "\(path)[\(i)]")) }
            return out
        case .object:
            return [try condition(v, path)]
        case .null:
            return []
        default:
            throw fail(path, "expected an array of conditions, found \(describe(v))")
        }
    }

    static let clauseKeys: Set<String> = ["must", "should", "must_not", "min_should"]

    static func condition(_ v: JSONValue, _ path: String) throws(SextantError) -> Condition {
        let members = try object(v, path)
        let keys = Set(members.map(\.0))
        if keys.isEmpty { throw fail(path, "an empty condition") }
        if !keys.isDisjoint(with: clauseKeys) { return .filter(try filter(v, path)) }
        if keys.contains("key") { return try fieldCondition(members, path) }
        guard members.count == 1, let (name, body) = members.first else {
            throw fail(path, "expected one condition, found keys \(members.map(\.0).joined(separator: ", "))")
        }
        let p = path + "." + name
        switch name {
        case "is_empty": return .isEmpty(key: try keyOnly(body, p))
        case "is_null": return .isNull(key: try keyOnly(body, p))
        case "has_id":
            guard case .array(let items) = body else { throw fail(p, "expected an array of ids, found \(describe(body))") }
            var ids = Set<RecordID>()
            for (i, item) in items.enumerated() {
                switch item {
                case .int(let n) where n >= 0: ids.insert(.int(UInt64(n)))
                case .string(let s): ids.insert(.string(s))
                default: throw fail("\(p)[\(i)]", "expected a non-negative integer or a string id, found \(describe(item))")
                }
            }
            return .hasID(ids)
        case "nested":
            var key: String?
            var inner: Filter?
            for (k, x) in try object(body, p) {
                switch k {
                case "key":
                    guard case .string(let s) = x else { throw fail(p + ".key", "expected a string, found \(describe(x))") }
                    key = s
                case "filter": inner = try filter(x, p + ".filter")
                default: throw fail(p + "." + k, "unknown key (expected \"key\" and \"filter\")")
                }
            }
            guard let key else { throw fail(p, "\"key\" is missing") }
            guard let inner else { throw fail(p, "\"filter\" is missing") }
            try checkKey(key, p + ".key")
            return .nested(key: key, inner)
        case "filter":
            return .filter(try filter(body, p))
        default:
            throw fail(p, "unknown condition (expected \"key\", \"is_empty\", \"is_null\", \"has_id\", \"nested\" or a nested filter)")
        }
    }

    static func keyOnly(_ v: JSONValue, _ path: String) throws(SextantError) -> String {
        for (k, x) in try object(v, path) {
            guard k == "key" else { throw fail(path + "." + k, "unknown key (expected \"key\")") }
            guard case .string(let s) = x else { throw fail(path + ".key", "expected a string, found \(describe(x))") }
            try checkKey(s, path + ".key")
            return s
        }
        throw fail(path, "\"key\" is missing")
    }

    static func checkKey(_ key: String, _ path: String) throws(SextantError) {
        do { _ = try KeyPath(key) } catch { throw fail(path, error.message) }
    }

    static func fieldCondition(_ members: [(String, JSONValue)], _ path: String) throws(SextantError) -> Condition {
        var key: String?
        var result: Condition?
        func set(_ c: Condition, _ name: String) throws(SextantError) {
            if result != nil { throw fail(path + "." + name, "a field condition has exactly one of \"match\", \"range\", \"values_count\", \"is_empty\", \"is_null\"") }
            result = c
        }
        for (name, value) in members where name == "key" {
            guard case .string(let s) = value else { throw fail(path + ".key", "expected a string, found \(describe(value))") }
            try checkKey(s, path + ".key")
            key = s
        }
        guard let key else { throw fail(path, "\"key\" is missing") }
        for (name, value) in members where name != "key" {
            let p = path + "." + name
            switch name {
            case "match": try set(.match(key: key, try match(value, p)), name)
            case "range": try set(.range(key: key, try range(value, p, datetimeAllowed: true)), name)
            case "datetime_range": try set(.range(key: key, try range(value, p, datetimeAllowed: true, datetimeOnly: true)), name)
            case "values_count":
                let r = try range(value, p, datetimeAllowed: false)
                try set(.valuesCount(key: key, r), name)
            case "is_empty", "is_null":
                guard case .bool(let b) = value else { throw fail(p, "expected true or false, found \(describe(value))") }
                let c: Condition = name == "is_empty" ? .isEmpty(key: key) : .isNull(key: key)
                try set(b ? c : .filter(Filter(mustNot: [c])), name)
            default:
                throw fail(p, "unknown key (a field condition has \"key\" and one of \"match\", \"range\", \"values_count\", \"is_empty\", \"is_null\")")
            }
        }
        guard let result else { throw fail(path, "the condition on key '\(key)' says nothing about it (add \"match\", \"range\" or \"values_count\")") }
        return result
    }

    static func scalar(_ v: JSONValue, _ path: String) throws(SextantError) -> FilterValue {
        switch v {
        case .string(let s): return .keyword(s)
        case .int(let i): return .integer(i)
        case .bool(let b): return .bool(b)
        case .double: throw fail(path, "match compares strings, integers and booleans; use \"range\" for a fractional number like \(describe(v))")
        default: throw fail(path, "expected a string, an integer or a boolean, found \(describe(v))")
        }
    }

    static func match(_ v: JSONValue, _ path: String) throws(SextantError) -> Match {
        let members = try object(v, path)
        guard members.count == 1, let (name, body) = members.first else {
            throw fail(path, "expected exactly one of \"value\", \"any\", \"except\", \"text\"")
        }
        let p = path + "." + name
        switch name {
        case "value": return .value(try scalar(body, p))
        case "any", "except":
            guard case .array(let items) = body else { throw fail(p, "expected an array, found \(describe(body))") }
            var values: [FilterValue] = []
            for (i, item) in items.enumerated() { values.append(try scalar(item, "\(p)[\(i)]")) }
            return name == "any" ? .any(values) : .except(values)
        case "text":
            guard case .string(let s) = body else { throw fail(p, "expected a string, found \(describe(body))") }
            return .text(s)
        default:
            throw fail(p, "unknown match (expected \"value\", \"any\", \"except\" or \"text\")")
        }
    }

    static func range(_ v: JSONValue, _ path: String, datetimeAllowed: Bool, datetimeOnly: Bool = false) throws(SextantError) -> RangeBounds {
        var r = RangeBounds()
        var kinds = Set<Bool>()  // true = datetime
        for (name, x) in try object(v, path) {
            let p = path + "." + name
            let b: Bound
            switch x {
            case .int, .double:
                guard !datetimeOnly else { throw fail(p, "expected an RFC 3339 datetime string, found \(describe(x))") }
                let d = x.doubleValue!
                if !datetimeAllowed, d < 0 || d != d.rounded() { throw fail(p, "expected a non-negative integer, found \(describe(x))") }
                b = .number(d)
            case .string(let s) where datetimeAllowed:
                guard let t = RFC3339.seconds(s) else { throw fail(p, "\"\(s)\" is not an RFC 3339 datetime (like 2024-05-01T12:30:00Z)") }
                b = .datetime(t)
            default:
                throw fail(p, datetimeAllowed ? "expected a number or an RFC 3339 datetime string, found \(describe(x))" : "expected a non-negative integer, found \(describe(x))")
            }
            if case .datetime = b { kinds.insert(true) } else { kinds.insert(false) }
            switch name {
            case "gt": r.gt = b
            case "gte": r.gte = b
            case "lt": r.lt = b
            case "lte": r.lte = b
            default: throw fail(p, "unknown bound (expected \"gt\", \"gte\", \"lt\" or \"lte\")")
            }
        }
        if kinds.count > 1 { throw fail(path, "mixes numbers and datetimes") }
        if kinds.isEmpty { throw fail(path, "no bound given (expected \"gt\", \"gte\", \"lt\" or \"lte\")") }
        return r
    }
}
