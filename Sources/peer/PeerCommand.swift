import ArgumentParser

@main
struct PeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "A peer-to-peer node that speaks BitTorrent: make, inspect, share and fetch torrents.",
        discussion: """
            Examples:
              peer create ~/Videos/holiday            make holiday.torrent (hybrid v1+v2) and print its magnet link
              peer create song.flac --v1 -o song.torrent --tracker udp://tracker.example:6969/announce
              peer info holiday.torrent               show name, size, hashes, trackers and files
              peer info 'magnet:?xt=urn:btih:…' --json
              peer share holiday.torrent --data ~/Videos        seed it
              peer get holiday.torrent -o ~/Downloads --peer 192.0.2.10:6881
              peer scrape holiday.torrent             seeders, completed and leechers from each tracker
              peer search big buck bunny              find torrents by keyword in the node's index
              ffmpeg … -f webm - | peer live publish talk   a live stream its viewers relay; prints its link
              peer live play 'magnet:?xs=urn:btpk:…&x.live=1' | mpv -

            With a daemon running (peer serve), these talk to it through its HTTP API:
              peer add 'magnet:?xt=urn:btih:…'        add a magnet link, a URL or a .torrent file
              peer ls                                 its torrents: id, name, state, progress, rates, ETA
              peer show c9e1                          one torrent's files, peers and trackers (any id prefix)
              peer pause c9e1 / peer resume c9e1 / peer rm c9e1 --delete-data
              peer stats --json                       totals; every one of these takes --json and --state

            Environment:
              SSL_CERT_FILE   a PEM file of CA certificates that HTTPS trackers and web seeds are checked against,
                              instead of the system's CA bundle (as OpenSSL and curl read it); use it for a
                              tracker with a private or self-signed certificate
              PEER_HOME       the state folder when --state is not given
            """,
        version: PeerVersion.current,
        subcommands: [
            Create.self, Info.self, Get.self, Share.self, Serve.self, Scrape.self, DHTCommand.self, SearchCommand.self,
            IndexCommand.self, ChannelCommand.self, LiveCommand.self,
        ],
        groupedSubcommands: [CommandGroup(name: "Daemon client", subcommands: Client.commands)]
    )
}

enum PeerVersion {
    static let current = "0.1.0"
}
