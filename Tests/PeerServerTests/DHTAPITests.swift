import Bencode
import Crypto
import DHT
import Foundation
import HummingbirdTesting
import NIOPosix
import PeerBase
import PeerKit
import Testing

@testable import PeerServer

// `/api/dht/get` and `/api/dht/put` (BEP 44 through the daemon's node): the session's DHT joins through one
// more node on 127.0.0.1, which stores what is put, so every answer comes over real UDP sockets.

/// A session whose DHT bootstraps from a lone DHT node started for the test, and the router in front of it.
func withDHTAPI<R: Sendable>(_ body: @escaping @Sendable (API) async throws -> R) async throws -> R {
    let other = try await DHTService.start(group: MultiThreadedEventLoopGroup.singleton, bindHost: "127.0.0.1", port: 0,
        routers: [], knownNodes: [])
    do {
        let result = try await withAPI(configure: { c in
            c.dht = true
            c.dhtNodes = ["127.0.0.1:\(other.port)"]
        }, body)
        await other.stop()
        return result
    } catch {
        await other.stop()
        throw error
    }
}

@Suite("DHT items through the API")
struct DHTAPITests {
    @Test("an immutable item: put, get it back, 404 for a target nobody has; bad requests are 400")
    func immutable() async throws {
        try await withDHTAPI { api in
            let put = try await api.call(.post, "/api/dht/put", json: #"{"value": "hello"}"#)
            #expect(put.status == .ok, "\(put.text)")
            let target = "\(DHTItem.immutableTarget(for: .text("hello")))"
            #expect(try put.json() == .object(["target": .string(target), "stored_on": .number(1), "refused_by": .number(0)]))

            let got = try await api.call(.post, "/api/dht/get", json: #"{"target": "\#(target)"}"#)
            #expect(got.status == .ok, "\(got.text)")
            #expect(try got.json() == .object(["target": .string(target), "value": .string("hello"),
                "value_bencoded": .string(Data("5:hello".utf8).base64EncodedString())]))

            // A value that is not a string comes back as its bencoding, and exactly in value_bencoded.
            let list = BencodeValue.list([.integer(1), .text("two")])
            let b64 = Data(list.encoded).base64EncodedString()
            #expect(try await api.call(.post, "/api/dht/put", json: #"{"value_bencoded": "\#(b64)"}"#).status == .ok)
            let l = try await api.call(.post, "/api/dht/get", json: #"{"target": "\#(DHTItem.immutableTarget(for: list))"}"#)
            #expect(try l.json()["value"]?.string == "li1e3:twoe" && l.json()["value_bencoded"]?.string == b64)

            let missing = try await api.call(.post, "/api/dht/get", json: #"{"target": "\#(randomHex(20))"}"#)
            expectError(missing, .notFound, "not_found", mentioning: "no node has")

            let bad: [(String, String, String)] = [
                ("/api/dht/put", "{}", "value"),
                ("/api/dht/put", #"{"value": "a", "value_bencoded": "MWU="}"#, "value"),
                ("/api/dht/put", #"{"value_bencoded": "not base64!"}"#, "value_bencoded"),
                ("/api/dht/put", #"{"value_bencoded": "\#(Data("5:ab".utf8).base64EncodedString())"}"#, "value_bencoded"),
                ("/api/dht/put", #"{"value": "\#(String(repeating: "x", count: 1000))"}"#, "at most 1000"),
                ("/api/dht/put", #"{"value": "a", "seq": 1}"#, "public_key"),
                ("/api/dht/put", #"{"value": 5}"#, "value"),
                ("/api/dht/get", "{}", "target"),
                ("/api/dht/get", #"{"target": "abc"}"#, "40 hex digits"),
                ("/api/dht/get", #"{"target": "\#(target)", "salt": "s"}"#, "salt"),
                ("/api/dht/get", #"{"public_key": "00"}"#, "64 hex digits"),
                ("/api/dht/get", #"{"public_key": "\#(randomHex(32))", "salt": "\#(String(repeating: "s", count: 65))"}"#,
                 "at most 64"),
            ]
            for (path, body, mentioning) in bad {
                expectError(try await api.call(.post, path, json: body), .badRequest, "bad_request", mentioning: mentioning)
            }
        }
    }

    @Test("a mutable item: the caller signs, the daemon stores; a newer seq wins, an older one and a bad signature do not")
    func mutable() async throws {
        try await withDHTAPI { api in
            let key = Curve25519.Signing.PrivateKey()
            let publicKey = Hex.encode(Array(key.publicKey.rawRepresentation))
            func put(_ text: String, seq: Int64, cas: Int64? = nil, corrupt: Bool = false) async throws -> TestResponse {
                var item = try MutableItem.signed(value: .text(text), sequence: seq, salt: Array("notes".utf8), privateKey: key)
                if corrupt { item.signature[0] ^= 1 }
                let body = try JSONEncoder().encode(DHTReport.PutRequest(.mutable(item), cas: cas))
                return try await api.call(.post, "/api/dht/put", json: String(decoding: body, as: UTF8.self))
            }
            func current() async throws -> JSONValue {
                let r = try await api.call(.post, "/api/dht/get", json: #"{"public_key": "\#(publicKey)", "salt": "notes"}"#)
                #expect(r.status == .ok, "\(r.text)")
                return try r.json()
            }
            #expect(try await put("first", seq: 0).json()["stored_on"]?.int == 1)
            #expect(try await put("second", seq: 1, cas: 0).json()["stored_on"]?.int == 1)
            let now = try await current()
            #expect(now["value"]?.string == "second" && now["seq"]?.int == 1 && now["public_key"]?.string == publicKey)
            #expect(now["target"]?.string
                == "\(MutableItem.target(publicKey: key.publicKey.rawRepresentation.map { $0 }, salt: Array("notes".utf8)))")

            // An older sequence number is refused by the node that stores it (BEP 44 error 302).
            let older = try await put("older", seq: 0)
            #expect(older.status == .ok)
            #expect(try older.json()["stored_on"]?.int == 0 && older.json()["refused_by"]?.int == 1, "\(older.text)")
            // A signature that does not match never leaves the daemon.
            expectError(try await put("forged", seq: 5, corrupt: true), .badRequest, "bad_request", mentioning: "signature")
            // The same salt under another key is another item: nobody has it.
            let other = try await api.call(.post, "/api/dht/get", json: #"{"public_key": "\#(randomHex(32))", "salt": "notes"}"#)
            expectError(other, .notFound, "not_found")
            #expect(try await current()["value"]?.string == "second")
        }
    }

    @Test("with the DHT off, get and put are 409")
    func dhtOff() async throws {
        try await withAPI { api in
            expectError(try await api.call(.post, "/api/dht/get", json: #"{"target": "\#(randomHex(20))"}"#), .conflict, "conflict")
            expectError(try await api.call(.post, "/api/dht/put", json: #"{"value": "x"}"#), .conflict, "conflict")
        }
    }
}
