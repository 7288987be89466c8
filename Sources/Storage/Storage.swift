// Storage: where a torrent's pieces live. BEP 3 (pieces over concatenated files), BEP 47 (padding files,
// never written, read as zeros), BEP 52 (v2: files aligned to pieces, 16 KiB Merkle blocks).
//
// Pure parts: `PieceVerifier` (SHA-1 and Merkle checks) and `ResumeData`; the piece geometry (`PieceMap`)
// is Metainfo's. The one I/O part is behind the `TorrentStorage`
// protocol: `FileStorage` does positional reads and writes under a download folder, never following a
// symbolic link inside it, and `MemoryStorage` is its in-memory twin for tests and simulation.
// Nothing here reads a clock, opens a socket or starts a thread; callers run the synchronous methods
// off their event loop.
