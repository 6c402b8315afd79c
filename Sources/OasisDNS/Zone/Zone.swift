/// The records of one zone, as read from a master file, before the engine compiles
/// them into its lookup tables.
public struct Zone: Sendable {
    /// The apex.
    public var origin: DomainName
    /// Every record, in file order.
    public var records: [ResourceRecord]
    /// Where the zone came from, for error messages.
    public var source: String

    public init(origin: DomainName, records: [ResourceRecord], source: String = "<zone>") {
        self.origin = origin
        self.records = records
        self.source = source
    }

    /// Reads the master file at `path` with `origin` as its initial `$ORIGIN`.
    public static func load(file path: String, origin: DomainName) throws(ZoneFileError) -> Zone {
        Zone(
            origin: origin, records: try ZoneFileParser.parse(file: path, origin: origin),
            source: path)
    }

    /// Checks what `nsd-checkzone` checks before serving: exactly one SOA, at the apex;
    /// nothing outside the zone; a CNAME alone at its name (RFC 2181 §10.1).
    public func validate() throws(ZoneFileError) {
        func fail(_ problem: ZoneFileError.Problem) -> ZoneFileError {
            ZoneFileError(file: source, line: 0, problem: problem)
        }
        guard !records.isEmpty else { throw fail(.emptyFile) }
        var soaCount = 0
        var types: [DomainName: Set<RecordType>] = [:]
        var cnames: [DomainName: Set<RecordData>] = [:]
        for record in records {
            guard record.name.isSubdomain(of: origin) else {
                throw fail(.outOfZone(record.name.description))
            }
            if record.type == .soa {
                guard record.name == origin else { throw fail(.outOfZone(record.name.description)) }
                soaCount += 1
            }
            types[record.name, default: []].insert(record.type)
            if record.type == .cname { cnames[record.name, default: []].insert(record.data) }
        }
        guard soaCount > 0 else { throw fail(.noSOA) }
        guard soaCount == 1 else { throw fail(.multipleSOA) }
        for (name, set) in cnames {
            guard set.count == 1 else { throw fail(.multipleCNAME(name.description)) }
            guard
                types[name]!.subtracting([.cname, .ds, .rrsig, .nsec, .nsec3, .sig, .nxt]).isEmpty
            else {
                throw fail(.cnameAndOtherData(name.description))
            }
        }
    }
}
