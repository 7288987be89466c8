// Fuzzes the KRPC decoder and a DHT node's handling of datagrams: no input may crash them, whatever decodes
// must re-encode to a message that decodes to itself, and a node answers any datagram with at most two
// datagrams (the answer and a verification ping), each within its reply limit and only to the sender.
import DHT
import FuzzShim
import PeerBase
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let message = try? KRPCMessage.decode(bytes) {
        let again = try! KRPCMessage.decode(message.encoded)
        precondition(again == message, "decode(encode(m)) == m")
    }
    // The same bytes as a datagram to a node that has one query in flight (its transaction id is fixed by the
    // seed, so the fuzzer can find it and reach the answer paths too).
    let source = DHTEndpoint(ip: .ipv4(1, 2, 3, 4), port: 6881)
    var node = DHTNode(configuration: .init(families: [.ipv4, .ipv6]), at: .zero, seed: 1)
    node.handle(.ping(source), at: .zero)
    while node.pollTransmit() != nil {}
    node.receive(bytes, from: source, at: Instant(offset: .milliseconds(10)))
    var count = 0
    while let d = node.pollTransmit() {
        count += 1
        precondition(d.bytes.count <= node.configuration.maxReplyLength, "reply of \(d.bytes.count) bytes")
        precondition(d.destination == source, "a datagram to someone else")
    }
    precondition(count <= 2, "\(count) datagrams in answer to one")
    while node.pollEvent() != nil {}
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzz($0, $1) })
