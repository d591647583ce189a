//! Humanised units for tables (JSON keeps SI base units).

/// Seconds as s, ms, µs or ns with three significant digits.
pub fn seconds(s: f64) -> String {
    if s == 0.0 {
        return "0 s".into();
    }
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else if s >= 1e-6 {
        (s * 1e6, "µs")
    } else {
        (s * 1e9, "ns")
    };
    format!("{} {unit}", sig3(v))
}

/// Bytes in GiB (or MiB, KiB below that).
pub fn bytes(b: f64) -> String {
    const KIB: f64 = 1024.0;
    if b >= KIB.powi(3) {
        format!("{:.2} GiB", b / KIB.powi(3))
    } else if b >= KIB.powi(2) {
        format!("{:.2} MiB", b / KIB.powi(2))
    } else {
        format!("{:.1} KiB", b / KIB)
    }
}

/// A rate with an SI prefix: 989.4e12 → "989.4 T".
pub fn si(v: f64) -> String {
    let prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, p) in prefixes {
        if v.abs() >= scale {
            return format!("{} {p}", sig3(v / scale));
        }
    }
    format!("{} ", sig3(v))
}

/// A count with thousands separators: 6738415616 → "6,738,415,616".
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn percent(f: f64) -> String {
    format!("{:.1}%", f * 100.0)
}

/// Three significant digits without scientific notation.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanised_units() {
        assert_eq!(seconds(0.0123), "12.3 ms");
        assert_eq!(seconds(2.5e-6), "2.50 µs");
        assert_eq!(bytes(16.0 * 1024f64.powi(3)), "16.00 GiB");
        assert_eq!(si(989.4e12), "989 T");
        assert_eq!(count(6738415616), "6,738,415,616");
        assert_eq!(count(999), "999");
        assert_eq!(percent(0.4567), "45.7%");
    }
}
