import Testing

@testable import PortMap

@Suite("NAT-PMP and PCP messages (RFC 6886, 6887)")
struct NATPMPTests {
    @Test("requests have the RFCs' layouts")
    func requests() {
        #expect(NATPMP.externalAddressRequest() == [0, 0])
        #expect(NATPMP.mapRequest(.tcp, internalPort: 6881, externalPort: 6881, lifetime: 7200)
            == [0, 2, 0, 0, 0x1A, 0xE1, 0x1A, 0xE1, 0, 0, 0x1C, 0x20])
        #expect(NATPMP.mapRequest(.udp, internalPort: 1, externalPort: 0, lifetime: 0) == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        let nonce = [UInt8](1...12)
        let pcp = NATPMP.pcpMapRequest(.udp, internalPort: 6881, externalPort: 6881, lifetime: 7200,
            client: [192, 168, 1, 2], nonce: nonce)
        #expect(pcp.count == 60)
        #expect(Array(pcp[0..<8]) == [2, 1, 0, 0, 0, 0, 0x1C, 0x20])
        #expect(Array(pcp[8..<24]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 192, 168, 1, 2])
        #expect(Array(pcp[24..<36]) == nonce)
        #expect(Array(pcp[36..<44]) == [17, 0, 0, 0, 0x1A, 0xE1, 0x1A, 0xE1])
    }

    @Test("answers: external address, mappings by NAT-PMP and PCP, refusals; truncated ones are errors")
    func answers() throws {
        #expect(try NATPMP.decode([0, 128, 0, 0, 0, 0, 0, 9, 20, 0, 0, 1]) == .externalAddress(ip: [20, 0, 0, 1], epoch: 9))
        #expect(try NATPMP.decode([0, 130, 0, 0, 0, 0, 0, 9, 0x1A, 0xE1, 0x1A, 0xE2, 0, 0, 0x0E, 0x10])
            == .mapped(.tcp, internalPort: 6881, externalPort: 6882, lifetime: 3600, externalIP: nil, nonce: nil))
        // A NAT-PMP gateway's answer to a PCP request: unsupported version.
        #expect(try NATPMP.decode([0, 129, 0, 1]) == .refused(version: 0, opcode: 1, code: 1))
        var pcp = [UInt8](repeating: 0, count: 60)
        pcp[0] = 2
        pcp[1] = 0x81
        pcp[4...7] = [0, 0, 0x1C, 0x20]
        pcp[24..<36] = ArraySlice(1...12)
        pcp[36] = 6
        pcp[40...43] = [0x1A, 0xE1, 0x1A, 0xE1]
        pcp[54...59] = [0xFF, 0xFF, 20, 0, 0, 1]
        #expect(try NATPMP.decode(pcp)
            == .mapped(.tcp, internalPort: 6881, externalPort: 6881, lifetime: 7200, externalIP: [20, 0, 0, 1],
                nonce: Array(1...12)))
        pcp[3] = 2
        #expect(try NATPMP.decode(pcp) == .refused(version: 2, opcode: 1, code: 2))
        #expect(throws: NATPMP.DecodeError.short(40)) { try NATPMP.decode([2, 0x81, 0, 0] + [UInt8](repeating: 0, count: 36)) }
        #expect(throws: NATPMP.DecodeError.short(2)) { try NATPMP.decode([0, 128]) }
        #expect(throws: NATPMP.DecodeError.notAResponse) { try NATPMP.decode([0, 2, 0, 0]) }
        #expect(throws: NATPMP.DecodeError.unknownVersion(7)) { try NATPMP.decode([7, 0, 0, 0]) }
        #expect(NATPMP.describe(version: 0, code: 2) == "NAT-PMP result 2 (not authorized or refused)")
    }
}

@Suite("UPnP IGD messages")
struct UPnPIGDTests {
    @Test("an SSDP answer from a gateway gives its description URL; others give none")
    func search() {
        let answer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            + "USN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLocation: http://192.168.77.1:5000/rootDesc.xml\r\n\r\n"
        #expect(UPnPIGD.location(ofSearchResponse: Array(answer.utf8)) == "http://192.168.77.1:5000/rootDesc.xml")
        let printer = "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:Printer:1\r\nLOCATION: http://192.168.77.9/d.xml\r\n\r\n"
        #expect(UPnPIGD.location(ofSearchResponse: Array(printer.utf8)) == nil)
        #expect(UPnPIGD.location(ofSearchResponse: Array("NOTIFY * HTTP/1.1\r\n\r\n".utf8)) == nil)
        #expect(String(decoding: UPnPIGD.searchRequest(), as: UTF8.self).hasPrefix("M-SEARCH * HTTP/1.1\r\n"))
    }

    static let description = """
        <?xml version="1.0"?>
        <root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
        <deviceList><device><deviceList><device><serviceList>
        <service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
        <controlURL>/ctl/IPConn</controlURL></service>
        <service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>
        <controlURL>/ctl/PPP</controlURL></service>
        </serviceList></device></deviceList></device></deviceList></device></root>
        """

    @Test("the description's best WAN connection service, its control URL made absolute")
    func description() {
        let service = UPnPIGD.service(inDescription: Array(Self.description.utf8), at: "http://192.168.77.1:5000/rootDesc.xml")
        #expect(service == .init(type: "urn:schemas-upnp-org:service:WANIPConnection:1",
            controlURL: "http://192.168.77.1:5000/ctl/IPConn"))
        let withBase = Self.description.replacingOccurrences(of: "<device><deviceType>",
            with: "<URLBase>http://10.0.0.1:49000/</URLBase><device><deviceType>")
        #expect(UPnPIGD.service(inDescription: Array(withBase.utf8), at: "http://192.168.77.1:5000/rootDesc.xml")?.controlURL
            == "http://10.0.0.1:49000/ctl/IPConn")
        #expect(UPnPIGD.service(inDescription: Array("<root></root>".utf8), at: "http://x/") == nil)
        #expect(UPnPIGD.service(inDescription: Array("not xml <".utf8), at: "http://x/") == nil)
    }

    @Test("actions carry their arguments escaped; answers and faults are read")
    func actions() {
        let add = UPnPIGD.addPortMapping(service: "urn:schemas-upnp-org:service:WANIPConnection:1", proto: .udp,
            externalPort: 6881, internalClient: "192.168.77.2", internalPort: 6881, description: "Peer <6881>", lease: 3600)
        #expect(add.soapAction == "\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"")
        #expect(add.body.contains("<NewProtocol>UDP</NewProtocol>"))
        #expect(add.body.contains("<NewPortMappingDescription>Peer &lt;6881&gt;</NewPortMappingDescription>"))
        #expect(add.body.contains("<NewLeaseDuration>3600</NewLeaseDuration>"))
        let ok = """
            <?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
            <u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">
            <NewExternalIPAddress>20.0.0.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>
            """
        #expect(UPnPIGD.answer(Array(ok.utf8)) == .ok(["NewExternalIPAddress": "20.0.0.1"]))
        let fault = """
            <?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
            <faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>
            <UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>725</errorCode>
            <errorDescription>OnlyPermanentLeasesSupported</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>
            """
        #expect(UPnPIGD.answer(Array(fault.utf8)) == .fault(code: 725, description: "OnlyPermanentLeasesSupported"))
        #expect(UPnPIGD.answer(Array("garbage".utf8)) == nil)
        #expect(UPnPIGD.describe(code: 718, description: "") == "UPnP error 718 (conflict in mapping entry)")
    }
}
