//! VDSM's volume metadata (`<vol_uuid>.meta`), byte-compatible with VDSM.
//!
//! `KEY=VALUE` lines sorted by key, then a line `EOF`, at most 512 bytes.
//! Keys Ferry does not know are kept and written back, so a file written by
//! a newer VDSM survives a round trip through Ferry.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_api::{Allocation, Legality, VolumeFormat, VolumeRole};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The largest `.meta` VDSM accepts: one 512-byte metadata slot.
pub const MAX_METADATA_BYTES: usize = 512;

/// The longest description VDSM accepts.
pub const MAX_DESCRIPTION_CHARS: usize = 210;

/// The PUUID of a volume without a parent.
pub const NO_PARENT: Uuid = Uuid::nil();

/// The highest generation before it wraps to 0, as in VDSM.
const MAX_GENERATION: u32 = 999;

/// Ferry's own key: the domain of a parent that lives on another domain,
/// written only while a move is in flight (VDSM has no way to say this: the
/// seed's first "limitation"). Absent otherwise, so plain volumes stay
/// byte-identical to VDSM's.
const KEY_PARENT_DOMAIN: &str = "PDOMAIN";

/// Everything a `.meta` file says about a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMetadata {
    /// Virtual size in bytes (`CAP`).
    pub capacity: u64,
    /// Creation time, seconds since the epoch (`CTIME`).
    pub ctime: u64,
    /// Free text, at most 210 characters (`DESCRIPTION`).
    pub description: String,
    /// What the disk holds (`DISKTYPE`), `DATA` for VM disks.
    pub disk_type: String,
    /// The domain the volume is on (`DOMAIN`).
    pub domain: Uuid,
    /// The image format (`FORMAT`: COW or RAW).
    pub format: VolumeFormat,
    /// Bumped on every change, 0..=999 (`GEN`).
    pub generation: u32,
    /// The image (disk) the volume belongs to (`IMAGE`).
    pub image: Uuid,
    /// Whether the volume may be used (`LEGALITY`).
    pub legality: Legality,
    /// The parent volume (`PUUID`), `None` for a base.
    pub parent: Option<Uuid>,
    /// The domain of the parent when it is not this volume's own domain.
    pub parent_domain: Option<Uuid>,
    /// Sparse or preallocated (`TYPE`).
    pub allocation: Allocation,
    /// Leaf, internal or shared (`VOLTYPE`).
    pub role: VolumeRole,
    /// Keys Ferry does not interpret, kept verbatim.
    pub extra: BTreeMap<String, String>,
}

impl VolumeMetadata {
    /// Metadata for a volume about to be created: ILLEGAL, generation 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        domain: Uuid,
        image: Uuid,
        format: VolumeFormat,
        allocation: Allocation,
        capacity: u64,
        parent: Option<Uuid>,
        role: VolumeRole,
        description: &str,
    ) -> Self {
        VolumeMetadata {
            capacity,
            ctime: now_epoch(),
            description: description.to_string(),
            disk_type: "DATA".to_string(),
            domain,
            format,
            generation: 0,
            image,
            legality: Legality::Illegal,
            parent,
            parent_domain: None,
            allocation,
            role,
            extra: BTreeMap::new(),
        }
    }

    /// Moves the generation on by one, wrapping after 999 as VDSM does.
    pub fn bump_generation(&mut self) {
        self.generation = if self.generation >= MAX_GENERATION {
            0
        } else {
            self.generation + 1
        };
    }

    /// The file's text; `path` only names the file in errors.
    pub fn render(&self, path: &Path) -> Result<String> {
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(Error::InvalidRequest(format!(
                "the description of {} has {} characters; VDSM allows at most {MAX_DESCRIPTION_CHARS}",
                path.display(),
                self.description.chars().count()
            )));
        }
        if self.description.contains(['\n', '\r', '\0']) {
            return Err(Error::InvalidRequest(format!(
                "the description of {} contains a line break or NUL, which the metadata format cannot hold",
                path.display()
            )));
        }
        let mut keys = self.extra.clone();
        let mut put = |k: &str, v: String| {
            keys.insert(k.to_string(), v);
        };
        put("CAP", self.capacity.to_string());
        put("CTIME", self.ctime.to_string());
        put("DESCRIPTION", self.description.clone());
        put("DISKTYPE", self.disk_type.clone());
        put("DOMAIN", self.domain.to_string());
        put("FORMAT", format_name(self.format).to_string());
        put("GEN", self.generation.to_string());
        put("IMAGE", self.image.to_string());
        put("LEGALITY", legality_name(self.legality).to_string());
        put("PUUID", self.parent.unwrap_or(NO_PARENT).to_string());
        put("TYPE", allocation_name(self.allocation).to_string());
        put("VOLTYPE", role_name(self.role).to_string());
        if let Some(pd) = self.parent_domain {
            put(KEY_PARENT_DOMAIN, pd.to_string());
        } else {
            keys.remove(KEY_PARENT_DOMAIN);
        }
        let mut text = String::new();
        for (k, v) in &keys {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        text.push_str("EOF\n");
        if text.len() > MAX_METADATA_BYTES {
            return Err(Error::MetadataTooLarge {
                path: path.to_path_buf(),
                len: text.len(),
            });
        }
        Ok(text)
    }

    /// Reads a `.meta` file's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptMetadata {
            path: path.to_path_buf(),
            reason,
        };
        if text.len() > MAX_METADATA_BYTES {
            return Err(corrupt(format!(
                "it is {} bytes long; VDSM metadata is at most {MAX_METADATA_BYTES}",
                text.len()
            )));
        }
        let mut keys = parse_key_values(text, path, true)?;
        let mut take = |key: &str| {
            keys.remove(key)
                .ok_or_else(|| corrupt(format!("the key {key} is missing")))
        };
        let capacity = parse_num(&take("CAP")?, "CAP", path)?;
        let ctime = parse_num(&take("CTIME")?, "CTIME", path)?;
        let description = take("DESCRIPTION")?;
        let disk_type = take("DISKTYPE")?;
        let domain = parse_uuid(&take("DOMAIN")?, "DOMAIN", path)?;
        let format = parse_format(&take("FORMAT")?, path)?;
        let generation = parse_generation(&take("GEN")?, path)?;
        let image = parse_uuid(&take("IMAGE")?, "IMAGE", path)?;
        let legality = parse_legality(&take("LEGALITY")?, path)?;
        let parent = Some(parse_uuid(&take("PUUID")?, "PUUID", path)?).filter(|p| !p.is_nil());
        let allocation = parse_allocation(&take("TYPE")?, path)?;
        let role = parse_role(&take("VOLTYPE")?, path)?;
        let parent_domain = keys
            .remove(KEY_PARENT_DOMAIN)
            .map(|v| parse_uuid(&v, KEY_PARENT_DOMAIN, path))
            .transpose()?;
        check_parent_keys(format, parent, parent_domain).map_err(corrupt)?;
        Ok(VolumeMetadata {
            capacity,
            ctime,
            description,
            disk_type,
            domain,
            format,
            generation,
            image,
            legality,
            parent,
            parent_domain,
            allocation,
            role,
            extra: keys,
        })
    }
}

/// Parses `KEY=VALUE` lines; with `needs_eof`, a closing `EOF` line is
/// required and anything after it ignored (VDSM pads metadata slots).
pub(crate) fn parse_key_values(
    text: &str,
    path: &Path,
    needs_eof: bool,
) -> Result<BTreeMap<String, String>> {
    let corrupt = |reason: String| Error::CorruptMetadata {
        path: path.to_path_buf(),
        reason,
    };
    let mut keys = BTreeMap::new();
    let mut saw_eof = false;
    for (n, line) in text.lines().enumerate() {
        if line == "EOF" {
            saw_eof = true;
            break;
        }
        if line.is_empty() && !needs_eof {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            corrupt(format!(
                "line {} ({:?}) is not KEY=VALUE",
                n + 1,
                truncate(line, 40)
            ))
        })?;
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(corrupt(format!(
                "line {} has an invalid key {:?}",
                n + 1,
                truncate(k, 40)
            )));
        }
        if keys.insert(k.to_string(), v.to_string()).is_some() {
            return Err(corrupt(format!("the key {k} appears twice")));
        }
    }
    if needs_eof && !saw_eof {
        return Err(corrupt(
            "it has no closing EOF line (the file is truncated)".to_string(),
        ));
    }
    Ok(keys)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn parse_num(v: &str, key: &str, path: &Path) -> Result<u64> {
    v.parse()
        .map_err(|_| bad_value(key, v, "a non-negative integer", path))
}

fn parse_uuid(v: &str, key: &str, path: &Path) -> Result<Uuid> {
    Uuid::parse_str(v).map_err(|_| bad_value(key, v, "a UUID", path))
}

/// A parent only under a COW volume, and a parent's domain only with a
/// parent; the reason otherwise.
fn check_parent_keys(
    format: VolumeFormat,
    parent: Option<Uuid>,
    parent_domain: Option<Uuid>,
) -> std::result::Result<(), String> {
    if format == VolumeFormat::Raw && parent.is_some() {
        return Err(
            "it describes a RAW volume with a parent; only COW volumes have parents".into(),
        );
    }
    if parent.is_none() && parent_domain.is_some() {
        return Err(format!(
            "{KEY_PARENT_DOMAIN} is set but PUUID names no parent"
        ));
    }
    Ok(())
}

fn parse_generation(v: &str, path: &Path) -> Result<u32> {
    u32::try_from(parse_num(v, "GEN", path)?)
        .ok()
        .filter(|g| *g <= MAX_GENERATION)
        .ok_or_else(|| Error::CorruptMetadata {
            path: path.to_path_buf(),
            reason: "GEN is outside 0..999".to_string(),
        })
}

fn parse_format(v: &str, path: &Path) -> Result<VolumeFormat> {
    match v {
        "COW" => Ok(VolumeFormat::Qcow2),
        "RAW" => Ok(VolumeFormat::Raw),
        other => Err(bad_value("FORMAT", other, "COW or RAW", path)),
    }
}

fn parse_legality(v: &str, path: &Path) -> Result<Legality> {
    match v {
        "LEGAL" => Ok(Legality::Legal),
        "ILLEGAL" => Ok(Legality::Illegal),
        "FAKE" => Ok(Legality::Fake),
        other => Err(bad_value("LEGALITY", other, "LEGAL, ILLEGAL or FAKE", path)),
    }
}

fn parse_allocation(v: &str, path: &Path) -> Result<Allocation> {
    match v {
        "SPARSE" => Ok(Allocation::Sparse),
        "PREALLOCATED" => Ok(Allocation::Preallocated),
        other => Err(bad_value("TYPE", other, "SPARSE or PREALLOCATED", path)),
    }
}

fn parse_role(v: &str, path: &Path) -> Result<VolumeRole> {
    match v {
        "LEAF" => Ok(VolumeRole::Leaf),
        "INTERNAL" => Ok(VolumeRole::Internal),
        "SHARED" => Ok(VolumeRole::Shared),
        other => Err(bad_value(
            "VOLTYPE",
            other,
            "LEAF, INTERNAL or SHARED",
            path,
        )),
    }
}

fn bad_value(key: &str, value: &str, expected: &str, path: &Path) -> Error {
    Error::CorruptMetadata {
        path: path.to_path_buf(),
        reason: format!("{key} is {:?}; expected {expected}", truncate(value, 60)),
    }
}

fn format_name(f: VolumeFormat) -> &'static str {
    match f {
        VolumeFormat::Qcow2 => "COW",
        VolumeFormat::Raw => "RAW",
    }
}

fn legality_name(l: Legality) -> &'static str {
    match l {
        Legality::Legal => "LEGAL",
        Legality::Illegal => "ILLEGAL",
        Legality::Fake => "FAKE",
    }
}

fn allocation_name(a: Allocation) -> &'static str {
    match a {
        Allocation::Sparse => "SPARSE",
        Allocation::Preallocated => "PREALLOCATED",
    }
}

fn role_name(r: VolumeRole) -> &'static str {
    match r {
        VolumeRole::Leaf => "LEAF",
        VolumeRole::Internal => "INTERNAL",
        VolumeRole::Shared => "SHARED",
    }
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "CAP=1073741824\nCTIME=1557522135\nDESCRIPTION=\nDISKTYPE=DATA\nDOMAIN=a0b1c2d3-0000-4000-8000-000000000001\nFORMAT=COW\nGEN=0\nIMAGE=a0b1c2d3-0000-4000-8000-000000000002\nLEGALITY=LEGAL\nPUUID=a0b1c2d3-0000-4000-8000-000000000003\nTYPE=SPARSE\nVOLTYPE=LEAF\nEOF\n";

    fn p() -> &'static Path {
        Path::new("/x/vol.meta")
    }

    #[test]
    fn vdsm_file_round_trips_byte_for_byte() {
        let md = VolumeMetadata::parse(SAMPLE, p()).expect("parse");
        assert_eq!(md.format, VolumeFormat::Qcow2);
        assert_eq!(md.capacity, 1 << 30);
        assert!(md.parent.is_some());
        assert_eq!(md.render(p()).expect("render"), SAMPLE);
    }

    #[test]
    fn base_has_nil_puuid_and_unknown_keys_survive() {
        let text = SAMPLE
            .replace(
                "PUUID=a0b1c2d3-0000-4000-8000-000000000003",
                "PUUID=00000000-0000-0000-0000-000000000000",
            )
            .replace("LEGALITY=LEGAL\n", "LEGALITY=LEGAL\nMTIME=0\n");
        let md = VolumeMetadata::parse(&text, p()).expect("parse");
        assert_eq!(md.parent, None);
        assert_eq!(md.extra.get("MTIME").map(String::as_str), Some("0"));
        assert_eq!(md.render(p()).expect("render"), text);
    }

    #[test]
    fn generation_wraps_after_999() {
        let mut md = VolumeMetadata::parse(SAMPLE, p()).expect("parse");
        md.generation = 998;
        md.bump_generation();
        assert_eq!(md.generation, 999);
        md.bump_generation();
        assert_eq!(md.generation, 0);
    }

    #[test]
    fn cross_domain_parent_is_written_only_when_set() {
        let mut md = VolumeMetadata::parse(SAMPLE, p()).expect("parse");
        let d = Uuid::new_v4();
        md.parent_domain = Some(d);
        let text = md.render(p()).expect("render");
        assert!(text.contains(&format!("PDOMAIN={d}\nPUUID=")));
        let back = VolumeMetadata::parse(&text, p()).expect("parse");
        assert_eq!(back.parent_domain, Some(d));
    }

    #[test]
    fn malformed_inputs_name_the_problem() {
        let cases: Vec<(String, &str)> = vec![
            (SAMPLE.replace("EOF\n", ""), "no closing EOF"),
            (SAMPLE.replace("CAP=1073741824\n", ""), "CAP is missing"),
            (
                SAMPLE.replace("CAP=1073741824", "CAP=big"),
                "CAP is \"big\"",
            ),
            (
                SAMPLE.replace("FORMAT=COW", "FORMAT=VMDK"),
                "FORMAT is \"VMDK\"",
            ),
            (SAMPLE.replace("GEN=0", "GEN=1000"), "GEN is outside"),
            (
                SAMPLE.replace("LEGALITY=LEGAL", "LEGALITY=maybe"),
                "LEGALITY is",
            ),
            (SAMPLE.replace("DOMAIN=a0b1", "DOMAIN=zzzz"), "DOMAIN is"),
            (
                SAMPLE.replace("TYPE=SPARSE\n", "TYPE=SPARSE\ngarbage\n"),
                "is not KEY=VALUE",
            ),
            (SAMPLE.replace("GEN=0\n", "GEN=0\nGEN=1\n"), "appears twice"),
            (
                SAMPLE.replace("FORMAT=COW", "FORMAT=RAW"),
                "RAW volume with a parent",
            ),
            (
                format!("DESCRIPTION={}\n{SAMPLE}", "x".repeat(600)),
                "at most 512",
            ),
        ];
        for (text, expected) in cases {
            let err = VolumeMetadata::parse(&text, p())
                .expect_err(expected)
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
            assert!(err.contains("/x/vol.meta"), "{err:?} should name the file");
        }
    }

    #[test]
    fn oversized_metadata_is_refused_on_write() {
        let mut md = VolumeMetadata::parse(SAMPLE, p()).expect("parse");
        md.description = "d".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert!(md.render(p()).is_err());
        md.description = "line\nbreak".into();
        assert!(md.render(p()).is_err());
        md.description = "d".repeat(MAX_DESCRIPTION_CHARS);
        md.extra.insert("XTRA".into(), "y".repeat(200));
        assert!(matches!(
            md.render(p()),
            Err(Error::MetadataTooLarge { .. })
        ));
    }
}
