/// Human-readable byte counts and rates (binary units, as BitTorrent clients show them).
public enum ByteCount {
    /// Formats a byte count: `0 B`, `1023 B`, `1.50 KiB`, `16 MiB`, `20.5 MiB`, `1 GiB`.
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1023.95, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        if value == value.rounded() { return "\(Int(value)) \(units[unit])" }
        return "\(Self.fixed(value, value < 10 ? 2 : 1)) \(units[unit])"
    }

    /// Formats a number with a fixed count of decimals, without Foundation.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (value * scale).rounded()
        let whole = Int64(scaled / scale)
        let frac = Int64(abs(scaled) - abs(Double(whole)) * scale)
        if decimals == 0 { return "\(whole)" }
        let fracText = String(frac)
        let sign = (value < 0 && whole == 0) ? "-" : ""
        return "\(sign)\(whole).\(String(repeating: "0", count: max(0, decimals - fracText.count)))\(fracText)"
    }
}
