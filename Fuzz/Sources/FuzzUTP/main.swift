// Fuzzes the uTP decoder and an endpoint's handling of datagrams: no input may crash them, whatever decodes must
// re-encode to a packet that decodes to itself (the selective ACK padded to whole words), and an endpoint with one
// open connection answers any datagram with at most one datagram and holds at most one more connection.
import FuzzShim
import PeerBase
import UTP
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let packet = try? UTPPacket(bytes: bytes) {
        var again = try! UTPPacket(bytes: packet.bytes)
        precondition(again.selectiveAck.count >= packet.selectiveAck.count, "a selective ACK lost bytes")
        again.selectiveAck = Array(again.selectiveAck.prefix(packet.selectiveAck.count))
        precondition(again == packet, "decode(encode(p)) == p")
    }
    // The same bytes to an endpoint with one connection open from "peer" (its ids fixed by the seed, so the
    // fuzzer can find them and reach the connection's paths).
    var endpoint = UTPEndpoint<String>(seed: 1, at: .zero)
    let syn = UTPPacket(type: .syn, connectionID: 1000, seq: 1, ack: 0)
    endpoint.receive(syn.bytes, from: "peer", at: .zero)
    while endpoint.pollTransmit() != nil {}
    while endpoint.pollEvent() != nil {}
    endpoint.receive(bytes, from: "peer", at: Instant(offset: .milliseconds(10)))
    var count = 0
    while endpoint.pollTransmit() != nil { count += 1 }
    precondition(count <= 1, "\(count) datagrams in answer to one")
    precondition(endpoint.count <= 2, "\(endpoint.count) connections from two datagrams")
    while endpoint.pollEvent() != nil {}
    endpoint.handleTimeout(at: Instant(offset: .seconds(600)))
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzz($0, $1) })
