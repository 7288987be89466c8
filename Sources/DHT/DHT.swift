// DHT: the Mainline DHT (BEP 5) as a sans-I/O node.
//
// Covers BEP 5 (KRPC, routing table, get_peers/announce_peer, tokens), BEP 32 (IPv6: `nodes6`, `want`, one
// routing table per address family), BEP 42 (node IDs tied to the external IP, CRC32C), BEP 43 (read-only
// nodes, `ro`), BEP 44 (immutable and mutable items, `get`/`put`, ed25519) and BEP 51 (`sample_infohashes`).
//
// Purity contract: nothing in this target opens a socket, reads a clock, starts a thread or draws randomness
// from anywhere but a generator the caller passes in. Datagrams and time (`Instant`) go in through `DHTNode`'s
// `receive`, `handle` and `handleTimeout`; datagrams to send and results come out of `pollTransmit` and
// `pollEvent`. The same node therefore runs under a real UDP socket and in a deterministic simulation.
//
// Safety: every datagram is bounded before it is decoded (`DHTLimits`), transaction ids longer than 8 bytes
// are refused, node, value and sample lists are counted before they are kept, a malformed query gets at most
// a short fixed error, every reply stays under `DHTLimits.maxReplyLength`, replies are rate-limited per source
// IP, and the routing table, peer store and item store are bounded.
