// Tracker: talking to BitTorrent trackers, sans-I/O.
//
// Covers BEP 3 (HTTP announce), BEP 7 (IPv6 peers, `peers6`), BEP 12 (tiers of trackers), BEP 15 (UDP
// tracker protocol), BEP 23 (compact peer lists), BEP 48 (scrape) and BEP 52 (v2 torrents announce the
// first 20 bytes of their SHA-256 info-hash).
//
// Purity contract: this target builds URLs, parses response bodies and runs the UDP exchange as a state
// machine. It opens no socket, reads no file, reads no clock (time arrives as `Instant`) and draws no
// randomness except from a generator or seed the caller passes in. Every decoder bounds what it accepts
// (`TrackerLimits`) before it allocates, and tracker input never traps: it is parsed, dropped or reported
// as a `TrackerError`.
