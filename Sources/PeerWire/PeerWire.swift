// PeerWire: the peer wire protocol as a sans-I/O codec and per-connection machine.
// BEP 3 (messages), BEP 6 (fast extension), BEP 10 (extension protocol), BEP 9 (ut_metadata),
// BEP 52 (hash request / hashes / hash reject). Pure: bytes in, messages and bytes out; no sockets, no clock.
import Metainfo

/// Bounds worked out from the specs; every length a peer declares is checked against these before use.
public enum WireLimits {
    /// The most pieces a torrent may have (before metadata arrives, `have` indices are bounded by this).
    public static let maxPieces = 1 << 22
    /// The largest request accepted (mainstream clients refuse more than 16 KiB).
    public static let maxRequestLength = 16 * 1024
    /// The largest ut_metadata piece.
    public static let metadataPieceSize = 16 * 1024
    /// The largest metadata (info dictionary) accepted through BEP 9: 32 MiB.
    public static let maxMetadataSize = 32 << 20
    /// The largest extension message: an extension header plus a metadata piece and its bencoded prefix.
    public static let maxExtendedLength = 2 + metadataPieceSize + 1024
    /// The largest BEP 52 'hashes' message: 48 header bytes plus 512 base hashes plus uncle hashes.
    public static let maxHashesLength = 49 + (512 + 64) * 32

    /// The largest message of any kind: a bitfield for `maxPieces`, or a piece message with a block.
    public static func maxMessageLength(pieceCount: Int) -> Int {
        max(1 + (pieceCount + 7) / 8, 9 + PieceMap.blockSize, Self.maxExtendedLength, Self.maxHashesLength)
    }
}
