//! Printing: aligned tables for people, the API's JSON for scripts.

use anyhow::Result;
use serde::Serialize;

use crate::stdout::out;

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Bytes in the largest binary unit that keeps a whole number part.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scaled = n;
    while scaled >= 1024 && unit + 1 < UNITS.len() {
        scaled /= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    let div = 1u64 << (10 * unit);
    let tenths = (n % div) * 10 / div;
    format!("{scaled}.{tenths} {}", UNITS[unit])
}

/// A date of epoch seconds, `YYYY-MM-DD` (UTC), with the days left.
pub fn expiry(not_after: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = ferry_engine::ops::certs::date(not_after);
    let left = not_after.saturating_sub(now);
    match left {
        0 => format!("{date} (expired)"),
        1..172_800 => format!("{date} ({} h)", left.div_ceil(3600)),
        _ => format!("{date} ({} days)", left / 86_400),
    }
}

/// Prints certificates and their ends (`ferry engine rotate-certs`).
pub fn certificates(c: &ferry_api::engine::Certificates) {
    let rows = c
        .engine
        .iter()
        .chain(&c.hosts)
        .map(|s| {
            vec![
                s.owner.clone(),
                expiry(s.not_after),
                s.fingerprint.get(..16).unwrap_or_default().to_string(),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    table(&["CERTIFICATE", "EXPIRES", "SHA256", "ERROR"], &rows);
}

/// A short form of a UUID for tables (the full one is in `--json`).
pub fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// Parses a size: bytes, or a number with K, M, G or T (powers of 1024),
/// optionally followed by `iB` or `B`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| {
        format!("'{s}' is not a size: use bytes or a number with K, M, G or T (e.g. 10G)")
    })?;
    n.checked_mul(1u64 << shift)
        .filter(|b| *b > 0)
        .ok_or_else(|| {
            format!("'{s}' is not a usable size: it must be more than 0 and fit in 64 bits")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units_and_bad_ones_say_why() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert!(parse_size("ten")
            .expect_err("not a size")
            .contains("not a size"));
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
