import Bencode

/// A .torrent file around an info dictionary received from peers (BEP 9): the info dictionary byte for byte
/// (it is not re-encoded, so its hash stays the same), the magnet link's trackers, and any v2 piece layers
/// learnt from peers.
public enum TorrentFileBytes {
    public static func encode(info: [UInt8], trackers: [String], pieceLayers: [[UInt8]: [UInt8]] = [:]) -> [UInt8] {
        var file = Array("d".utf8)
        if !trackers.isEmpty {
            file += BencodeEncoder.encode(.text("announce-list"))
            file += BencodeEncoder.encode(.list(trackers.map { .list([.text($0)]) }))
        }
        file += Array("4:info".utf8) + info
        if !pieceLayers.isEmpty {
            var layers = BencodeDictionary()
            for (root, layer) in pieceLayers { layers[root] = .string(layer) }
            file += BencodeEncoder.encode(.text("piece layers")) + BencodeEncoder.encode(.dictionary(layers))
        }
        file += Array("e".utf8)
        return file
    }
}
