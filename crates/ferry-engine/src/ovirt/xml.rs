//! The XML shapes of oVirt's API v4 that Ferry serves, all in one place,
//! named as oVirt's API model (`ovirt-engine-api-model`) names them: the
//! element names, the `id`/`href` attributes on every object, lowercase
//! enum values. Only what the served operations need is here; the SDK
//! ignores what it does not find and skips what it does not know.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where every href starts: the SDK's `follow_link` needs the prefix.
pub(crate) const API: &str = "/ovirt-engine/api";

/// A reference to another object: `<host id="…" href="…"/>`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ref {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
}

impl Ref {
    /// The object `id` of the collection `collection` (`disks`, `vms`).
    pub fn to(collection: &str, id: impl std::fmt::Display) -> Ref {
        let id = id.to_string();
        Ref {
            href: format!("{API}/{collection}/{id}"),
            id,
        }
    }
}

/// A link to a related collection or an action: `<link rel="…" href="…"/>`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Link {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@rel")]
    pub rel: String,
}

impl Link {
    pub fn new(rel: &str, href: String) -> Link {
        Link {
            href,
            rel: rel.into(),
        }
    }
}

/// The actions an object takes, as links.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Actions {
    pub link: Vec<Link>,
}

/// `GET /ovirt-engine/api`.
#[derive(Debug, Serialize)]
pub(crate) struct Api {
    pub link: Vec<Link>,
    pub product_info: ProductInfo,
    pub time: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProductInfo {
    pub name: String,
    pub vendor: String,
    pub version: Version,
}

/// The API version served (oVirt 4.5's), which is what scripts check.
#[derive(Debug, Serialize)]
pub(crate) struct Version {
    pub build: u32,
    pub full_version: String,
    pub major: u32,
    pub minor: u32,
    pub revision: u32,
}

/// `<storage_domains>`.
#[derive(Debug, Serialize)]
pub(crate) struct StorageDomains {
    pub storage_domain: Vec<StorageDomain>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StorageDomain {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub name: String,
    pub available: u64,
    pub used: u64,
    pub external_status: &'static str,
    pub master: bool,
    pub status: &'static str,
    pub storage: Storage,
    pub storage_format: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub link: Vec<Link>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Storage {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub path: String,
}

/// `<disks>`.
#[derive(Debug, Serialize)]
pub(crate) struct Disks {
    pub disk: Vec<Disk>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Disk {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub actions: Actions,
    pub name: String,
    pub alias: String,
    pub actual_size: u64,
    pub content_type: &'static str,
    pub format: &'static str,
    pub image_id: String,
    pub propagate_errors: bool,
    pub provisioned_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qcow_version: Option<&'static str>,
    pub shareable: bool,
    pub sparse: bool,
    pub status: &'static str,
    pub storage_type: &'static str,
    pub total_size: u64,
    pub wipe_after_delete: bool,
    pub storage_domains: StorageDomainRefs,
}

/// `<storage_domains><storage_domain id href/></storage_domains>`.
#[derive(Debug, Serialize)]
pub(crate) struct StorageDomainRefs {
    pub storage_domain: Vec<Ref>,
}

/// `<vms>`.
#[derive(Debug, Serialize)]
pub(crate) struct Vms {
    pub vm: Vec<Vm>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Vm {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub name: String,
    pub memory: u64,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Ref>,
    pub link: Vec<Link>,
}

/// `<disk_attachments>`.
#[derive(Debug, Serialize)]
pub(crate) struct DiskAttachments {
    pub disk_attachment: Vec<DiskAttachment>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DiskAttachment {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub active: bool,
    pub bootable: bool,
    pub interface: &'static str,
    pub pass_discard: bool,
    pub read_only: bool,
    pub uses_scsi_reservation: bool,
    pub disk: Ref,
    pub vm: Ref,
}

/// `<jobs>`.
#[derive(Debug, Serialize)]
pub(crate) struct Jobs {
    pub job: Vec<Job>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Job {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub description: String,
    pub auto_cleared: bool,
    pub external: bool,
    pub last_updated: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub status: &'static str,
    pub link: Vec<Link>,
}

/// `<steps>`.
#[derive(Debug, Serialize)]
pub(crate) struct Steps {
    pub step: Vec<JobStep>,
}

#[derive(Debug, Serialize)]
pub(crate) struct JobStep {
    #[serde(rename = "@href")]
    pub href: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub external: bool,
    pub number: u32,
    pub progress: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub job: Ref,
}

/// The body of an action request (`POST …/move`): what the SDK's writer
/// sends. Unknown elements (`disk_profile`, `quota`, `filter`) are
/// accepted and ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionRequest {
    #[serde(rename = "async", default)]
    pub run_async: Option<bool>,
    #[serde(default)]
    pub storage_domain: Option<DomainChoice>,
}

/// A storage domain named in an action, by `id` attribute or `<name>`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DomainChoice {
    #[serde(rename = "@id", default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer to an action.
#[derive(Debug, Serialize)]
pub(crate) struct ActionReply {
    #[serde(rename = "async")]
    pub run_async: bool,
    pub job: Ref,
    pub status: &'static str,
    pub storage_domain: Ref,
}

/// An error, as oVirt answers every refused request but a 404.
#[derive(Debug, Serialize)]
pub(crate) struct Fault {
    pub reason: String,
    pub detail: String,
}

/// `value` as an XML document whose root element is `root`.
pub(crate) fn render<T: Serialize>(root: &str, value: &T) -> Result<String, quick_xml::SeError> {
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n");
    let mut ser = quick_xml::se::Serializer::with_root(&mut body, Some(root))?;
    ser.indent(' ', 4);
    value.serialize(ser)?;
    body.push('\n');
    Ok(body)
}

/// A time in oVirt's form (`2026-11-28T05:30:00.000Z`), from milliseconds
/// since the epoch.
pub(crate) fn time(ms: u64) -> String {
    format!(
        "{}.{:03}Z",
        crate::ops::certs::date_time(ms / 1000),
        ms % 1000
    )
}

/// A stable id for step `number` of job `job`: oVirt's steps have ids of
/// their own; Ferry's are positions in their job.
pub(crate) fn step_id(job: Uuid, number: u32) -> Uuid {
    Uuid::new_v5(&job, format!("step-{number}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_ovirt_writes_them() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_795_843_800_123), "2026-11-28T05:30:00.123Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn objects_carry_id_and_href_as_attributes() {
        let body = render(
            "storage_domains",
            &StorageDomainRefs {
                storage_domain: vec![Ref::to("storagedomains", "abc")],
            },
        )
        .expect("render");
        assert!(
            body.contains(
                r#"<storage_domain href="/ovirt-engine/api/storagedomains/abc" id="abc"/>"#
            ),
            "{body}"
        );
    }

    #[test]
    fn an_action_names_its_domain_by_id_or_by_name() {
        let by_id: ActionRequest = quick_xml::de::from_str(
            "<action>\n  <async>true</async>\n  <storage_domain id=\"d2\"/>\n  <disk_profile id=\"x\"/>\n</action>",
        )
        .expect("parse");
        assert_eq!(by_id.run_async, Some(true));
        assert_eq!(
            by_id.storage_domain.and_then(|d| d.id).as_deref(),
            Some("d2")
        );
        let by_name: ActionRequest = quick_xml::de::from_str(
            "<action><storage_domain><name>domain2</name></storage_domain></action>",
        )
        .expect("parse");
        assert_eq!(
            by_name.storage_domain.and_then(|d| d.name).as_deref(),
            Some("domain2")
        );
        let empty: ActionRequest = quick_xml::de::from_str("<action/>").expect("parse");
        assert!(empty.storage_domain.is_none());
    }
}
