import PeerBase
import Testing

@Suite("ByteCount")
struct ByteCountTests {
    @Test(
        "format examples",
        arguments: [
            (Int64(0), "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.50 KiB"),
            (10 * 1024 + 512, "10.5 KiB"),
            (1000 * 1024, "1000 KiB"),
            (16 << 20, "16 MiB"),
            ((16 << 20) + (1 << 19), "16.5 MiB"),
            (1 << 30, "1 GiB"),
            ((1 << 30) + 1, "1.00 GiB"),
            ((1 << 30) * 5 / 4, "1.25 GiB"),
            (1 << 40, "1 TiB"),
            (1 << 50, "1 PiB"),
            (1 << 60, "1024 PiB"),
            (-5, "-5 B"),
        ] as [(Int64, String)])
    func format(_ bytes: Int64, _ expected: String) {
        #expect(ByteCount.format(bytes) == expected)
    }

    @Test(
        "fixed decimals",
        arguments: [
            (1.5, 2, "1.50"),
            (1.005, 1, "1.0"),
            (0.25, 0, "0"),
            (2.5, 0, "3"),
            (3.14159, 3, "3.142"),
            (-1.5, 2, "-1.50"),
            (-0.25, 1, "-0.3"),
            (9.999, 2, "10.00"),
            (0.001, 2, "0.00"),
            (12.04, 1, "12.0"),
        ] as [(Double, Int, String)])
    func fixed(_ value: Double, _ decimals: Int, _ expected: String) {
        #expect(ByteCount.fixed(value, decimals) == expected)
    }
}
