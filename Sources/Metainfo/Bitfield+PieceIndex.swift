import PeerBase

extension Bitfield {
    /// Reads or changes the bit of a validated piece index.
    public subscript(piece: PieceIndex) -> Bool {
        get { self[piece.value] }
        set { self[piece.value] = newValue }
    }
}
