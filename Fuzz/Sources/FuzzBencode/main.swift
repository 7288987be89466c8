// Fuzzes the bencode decoder: arbitrary bytes must decode or throw BencodeError, never crash, and
// whatever decodes must survive a canonical re-encode and decode unchanged, with spans inside the input.
import Bencode
import FuzzShim
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let decoder = BencodeDecoder(limits: BencodeLimits(maxItems: 100_000))
    guard let node = try? decoder.decode(bytes) else { return 0 }
    precondition(node.span == 0..<bytes.count, "the top value spans the whole input")
    check(node, within: bytes.count)
    let value = node.value
    let again = try! decoder.decodeValue(BencodeEncoder.encode(value))
    precondition(again == value, "decode(encode(v)) == v")
    if node.isCanonicalDeep { precondition(BencodeEncoder.encode(value) == bytes, "canonical input re-encodes byte for byte") }
    return 0
}

func check(_ node: BencodeNode, within count: Int) {
    precondition(node.span.lowerBound >= 0 && node.span.upperBound <= count)
    switch node.kind {
    case .list(let items):
        for i in items {
            precondition(node.span.contains(i.span.lowerBound))
            check(i, within: count)
        }
    case .dictionary(let entries):
        for e in entries { check(e.value, within: count) }
    default: break
    }
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzz($0, $1) })
