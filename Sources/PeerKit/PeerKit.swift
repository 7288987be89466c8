// PeerKit: the engine. It drives the pure protocol cores (Swarm's TorrentMachine, DHTNode, the tracker and
// wire machines) with sockets (SwiftNIO), files and threads, and holds the Session the daemon runs on.
