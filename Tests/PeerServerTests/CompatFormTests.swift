import Foundation
import NIOCore
import Testing

@testable import PeerServer

@Suite("qBittorrent's form bodies")
struct CompatFormTests {
    @Test("form-urlencoded: + is a space, %XX decoded, a key without = is empty")
    func urlEncoded() {
        var f = Form()
        f.readURLEncoded("urls=magnet%3A%3Fxt%3Durn%3Abtih%3Aab&tags=a%2Cb+c&stopped")
        #expect(f["urls"] == "magnet:?xt=urn:btih:ab")
        #expect(f["tags"] == "a,b c")
        #expect(f["stopped"] == "")
    }

    @Test("multipart: every part with a filename is a .torrent file, whatever its name; the rest are fields")
    func multipart() throws {
        let body = [
            "--XyZ", "Content-Disposition: form-data; name=\"category\"", "", "tv",
            "--XyZ", "Content-Disposition: form-data; name=\"a.torrent\"; filename=\"a.torrent\"",
            "Content-Type: application/x-bittorrent", "", "d4:infodee",
            "--XyZ", "Content-Disposition: form-data; name=\"torrents\"", "", "second",
            "--XyZ--", "",
        ].joined(separator: "\r\n")
        var f = Form()
        try f.readMultipart(ByteBuffer(string: body), boundary: "XyZ")
        #expect(f["category"] == "tv")
        #expect(f.files.map { String(decoding: $0, as: UTF8.self) } == ["d4:infodee", "second"])
        #expect(Form.parameter("boundary", of: "multipart/form-data; boundary=\"XyZ\"") == "XyZ")
        #expect(Form.parameter("name", of: "form-data; filename=\"x\"") == nil)
        var broken = Form()
        #expect(throws: QBittorrentAPI.Failure.self) {
            try broken.readMultipart(ByteBuffer(string: "--XyZ\r\nno headers end"), boundary: "XyZ")
        }
    }
}
