// PeerKit: the engine. It drives the pure protocol cores with files, threads and (later) sockets.
// Today it holds torrent creation (`TorrentCreator`); the swarm engine, DHT and session come next.
