// Fuzzes the metainfo parser and the magnet-link parser: no input may crash them, and an accepted
// torrent must hold only sanitized paths and hashes of its raw info bytes.
import Bencode
import FuzzShim
#if canImport(Glibc)
import Glibc
#endif
import Metainfo

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? MagnetLink(parsing: String(decoding: bytes, as: UTF8.self))
    guard let t = try? TorrentMetainfo(bytes: bytes, limits: BencodeLimits(maxItems: 100_000)) else { return 0 }
    precondition(t.pieceLength > 0)
    precondition(t.infoHashes.v1 != nil || t.infoHashes.v2 != nil)
    for f in t.files {
        precondition(!f.path.isEmpty)
        for c in f.path {
            precondition(!c.isEmpty && c != "." && c != "..", "unsafe component \(c)")
            precondition(!c.contains("/") && !c.contains("\\") && !c.contains("\0"), "separator in \(c)")
            precondition(c.utf8.count <= 255)
        }
        precondition(f.length >= 0 && f.offset >= 0)
    }
    precondition(MagnetLink(t).description.hasPrefix("magnet:?xt=urn:bt"))
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzz($0, $1) })
