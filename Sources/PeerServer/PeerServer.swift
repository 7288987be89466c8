/// The daemon's HTTP face (docs/api.md): the JSON API, live events, streams and the web UI of a PeerKit
/// `Session`, served by Hummingbird.
public enum PeerServer {}
