import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// UPnP Internet Gateway Device messages (the `WANIPConnection` service's SOAP actions), as a control point sends
/// and reads them. No I/O: the driver multicasts the search, fetches the description and posts the actions.
public enum UPnPIGD {
    public static let multicastAddress = "239.255.255.250"
    public static let multicastPort = 1900
    /// The services that map ports, best first.
    public static let serviceTypes = [
        "urn:schemas-upnp-org:service:WANIPConnection:2",
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
    ]

    /// The SSDP search for gateways (sent to 239.255.255.250:1900).
    public static func searchRequest(mx: Int = 2) -> [UInt8] {
        Array(("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
            + "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMAN: \"ssdp:discover\"\r\nMX: \(mx)\r\n\r\n").utf8)
    }

    /// The description URL (LOCATION) of an SSDP answer that names a gateway or a WAN connection service; nil for
    /// anything else.
    public static func location(ofSearchResponse bytes: [UInt8]) -> String? {
        guard bytes.count <= 8192, let text = String(bytes: bytes, encoding: .utf8) else { return nil }
        let lines = text.split(whereSeparator: \.isNewline)
        guard let status = lines.first, status.hasPrefix("HTTP/1.1 200") || status.hasPrefix("HTTP/1.0 200") else {
            return nil
        }
        var location: String?
        var relevant = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "location" { location = value }
            if name == "st" || name == "usn" {
                relevant = relevant || value.contains("InternetGatewayDevice") || value.contains("WANIPConnection")
                    || value.contains("WANPPPConnection")
            }
        }
        guard relevant, let location, location.hasPrefix("http://") else { return nil }
        return location
    }

    /// A gateway's WAN connection service, from its description.
    public struct Service: Sendable, Equatable {
        public var type: String
        /// Absolute.
        public var controlURL: String
    }

    /// The best port-mapping service a device description offers, its control URL made absolute against
    /// `URLBase` or the description's own URL.
    public static func service(inDescription data: [UInt8], at location: String) -> Service? {
        guard data.count <= 256 << 10 else { return nil }
        let reader = DescriptionReader()
        let parser = XMLParser(data: Data(data))
        parser.delegate = reader
        guard parser.parse() else { return nil }
        let base = URL(string: reader.urlBase ?? location)
        for type in Self.serviceTypes {
            guard let found = reader.services.first(where: { $0.type == type }),
                let url = URL(string: found.control, relativeTo: base)?.absoluteURL, url.scheme == "http"
            else { continue }
            return Service(type: type, controlURL: url.absoluteString)
        }
        return nil
    }

    private final class DescriptionReader: NSObject, XMLParserDelegate {
        var services: [(type: String, control: String)] = []
        var urlBase: String?
        private var text = ""
        private var type: String?
        private var control: String?
        private var depth = 0

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:])
        {
            self.depth += 1
            if self.depth > 32 { parser.abortParsing() }
            self.text = ""
            if Self.local(name) == "service" { (self.type, self.control) = (nil, nil) }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if self.text.count < 2048 { self.text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            self.depth -= 1
            let value = self.text.trimmingCharacters(in: .whitespacesAndNewlines)
            switch Self.local(name) {
            case "serviceType": self.type = value
            case "controlURL": self.control = value
            case "URLBase": self.urlBase = value.isEmpty ? nil : value
            case "service":
                if let type = self.type, let control = self.control { self.services.append((type, control)) }
            default: break
            }
            self.text = ""
        }

        static func local(_ name: String) -> Substring { name.split(separator: ":").last ?? Substring(name) }
    }

    /// A SOAP action: its `SOAPAction` header and body.
    public struct Action: Sendable, Equatable {
        public var name: String
        public var soapAction: String
        public var body: String
    }

    public static func addPortMapping(service: String, proto: MappedProtocol, externalPort: UInt16, internalClient: String,
        internalPort: UInt16, description: String, lease: UInt32) -> Action
    {
        self.action("AddPortMapping", service: service, [
            ("NewRemoteHost", ""), ("NewExternalPort", "\(externalPort)"), ("NewProtocol", proto.rawValue),
            ("NewInternalPort", "\(internalPort)"), ("NewInternalClient", internalClient), ("NewEnabled", "1"),
            ("NewPortMappingDescription", description), ("NewLeaseDuration", "\(lease)"),
        ])
    }

    public static func deletePortMapping(service: String, proto: MappedProtocol, externalPort: UInt16) -> Action {
        self.action("DeletePortMapping", service: service, [
            ("NewRemoteHost", ""), ("NewExternalPort", "\(externalPort)"), ("NewProtocol", proto.rawValue),
        ])
    }

    public static func getExternalIPAddress(service: String) -> Action {
        self.action("GetExternalIPAddress", service: service, [])
    }

    private static func action(_ name: String, service: String, _ arguments: [(String, String)]) -> Action {
        let args = arguments.map { "<\($0.0)>\(Self.escape($0.1))</\($0.0)>" }.joined()
        let body = "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
            + "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
            + "<u:\(name) xmlns:u=\"\(service)\">\(args)</u:\(name)></s:Body></s:Envelope>\r\n"
        return Action(name: name, soapAction: "\"\(service)#\(name)\"", body: body)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    /// What a SOAP answer says: its output arguments, or the UPnP error of a fault.
    public enum Answer: Sendable, Equatable {
        case ok([String: String])
        case fault(code: Int, description: String)
    }

    /// Reads a SOAP response or fault body (any HTTP status: faults come with 500).
    public static func answer(_ data: [UInt8]) -> Answer? {
        guard data.count <= 64 << 10 else { return nil }
        let reader = AnswerReader()
        let parser = XMLParser(data: Data(data))
        parser.delegate = reader
        guard parser.parse() else { return nil }
        if let code = reader.errorCode { return .fault(code: code, description: reader.errorDescription ?? "") }
        return reader.sawBody ? .ok(reader.values) : nil
    }

    private final class AnswerReader: NSObject, XMLParserDelegate {
        var values: [String: String] = [:]
        var errorCode: Int?
        var errorDescription: String?
        var sawBody = false
        private var text = ""
        private var depth = 0

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:])
        {
            self.depth += 1
            if self.depth > 32 { parser.abortParsing() }
            if DescriptionReader.local(name) == "Body" { self.sawBody = true }
            self.text = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if self.text.count < 2048 { self.text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            self.depth -= 1
            let local = String(DescriptionReader.local(name))
            let value = self.text.trimmingCharacters(in: .whitespacesAndNewlines)
            switch local {
            case "errorCode": self.errorCode = Int(value)
            case "errorDescription": self.errorDescription = value
            default: if local.hasPrefix("New") { self.values[local] = value }
            }
            self.text = ""
        }
    }

    /// The UPnP errors a mapping meets, as a log line says them.
    public static func describe(code: Int, description: String) -> String {
        let names = [402: "invalid args", 501: "action failed", 606: "action not authorized",
                     714: "no such entry in array", 715: "wildcard not permitted in source IP",
                     716: "wildcard not permitted in external port", 718: "conflict in mapping entry",
                     724: "same port values required", 725: "only permanent leases supported",
                     726: "remote host only supports wildcard", 727: "external port only supports wildcard"]
        return "UPnP error \(code) (\(names[code] ?? (description.isEmpty ? "unknown" : description)))"
    }
}
