//! The OpenAPI document of `/api/v1`, generated from the handlers'
//! annotations and the `ferry_api::engine` types, so it cannot disagree
//! with what the engine answers.

use axum::Json;
use ferry_api::engine::{
    AddHost, ApiError, CertificateSummary, Certificates, CreateDisk, CreateDomain, CreateVm,
    DirectBoot, Disk, Domain, EngineCa, EngineHealth, EnrolAnswer, EnrolRequest, Event, Host,
    HostCertificate, HostEnrolment, HostStatus, Job, JobKind, JobState, JobStep, MoveMode,
    MoveRequest, Reenrol, RotateCertificates, Step, StepState, Vm, VmState, Volume,
};
use ferry_api::{ErrorKind, Legality, VolumeFormat, VolumeRole};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{disks, domains, health, hosts, jobs, vms};

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry engine",
        description = "Live storage migration of running QEMU VM disks. Every request but /api/v1/health, /api/v1/ca and /api/v1/enroll needs 'Authorization: Bearer <token>'. Things are named by name or UUID in paths and requests; errors are {\"error\": \"<sentence>\"}."
    ),
    paths(
        health::health,
        openapi_json,
        hosts::add, hosts::list, hosts::get, hosts::remove, hosts::reenrol, hosts::enroll,
        hosts::certificates, hosts::rotate, hosts::ca,
        domains::create, domains::list, domains::get,
        disks::create, disks::list, disks::get, disks::snapshot, disks::move_disk,
        vms::create, vms::list, vms::get, vms::start, vms::stop, vms::move_vm,
        jobs::list, jobs::get, jobs::cancel, jobs::retry, jobs::events,
    ),
    components(schemas(
        ApiError, EngineHealth, Host, HostStatus, HostCertificate, AddHost, Reenrol,
        HostEnrolment, EnrolRequest, EnrolAnswer, CertificateSummary, Certificates,
        RotateCertificates, EngineCa, Domain, CreateDomain, Volume, Disk,
        CreateDisk, VmState, Vm, DirectBoot, CreateVm, MoveRequest, JobKind, MoveMode, JobState,
        StepState, Step, JobStep, Job, Event, VolumeFormat, Legality, VolumeRole, ErrorKind,
    )),
    modifiers(&BearerToken, &CommonAnswers),
    security(("bearer" = [])),
    tags(
        (name = "engine", description = "The engine itself"),
        (name = "hosts", description = "Hypervisor hosts and their agents"),
        (name = "domains", description = "Storage domains"),
        (name = "disks", description = "Disks, their chains, snapshots and moves"),
        (name = "vms", description = "Virtual machines"),
        (name = "jobs", description = "Move jobs"),
        (name = "events", description = "The event log"),
    )
)]
pub(crate) struct ApiDoc;

/// Declares the bearer token scheme the `security` requirement names.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The refusals any operation may answer with, added to each so the
/// document lists every status the engine answers (the handlers' own
/// annotations list the ones particular to them): 401 without the token
/// (all but health), 400 for a malformed body, path or query, 404 for a
/// name or UUID in the path that names nothing, 503 when an operation
/// that needs a host finds none up (every POST). It also makes every
/// operation id unique.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let answer = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build()
        };
        for (path, item) in &mut openapi.paths.paths {
            let has_path_params = path.contains('{');
            let ops = [
                (item.get.as_mut(), false),
                (item.post.as_mut(), true),
                (item.put.as_mut(), true),
                (item.delete.as_mut(), true),
            ];
            for (op, changes) in ops {
                let Some(op) = op else { continue };
                // Handlers share names across resources (`list`, `get`):
                // the tag makes each operation's id unique, as OpenAPI
                // requires.
                if let (Some(tag), Some(id)) =
                    (op.tags.as_ref().and_then(|t| t.first()), &op.operation_id)
                {
                    if !id.starts_with(tag.as_str()) {
                        op.operation_id = Some(format!("{tag}_{id}"));
                    }
                }
                let answers = &mut op.responses.responses;
                let mut add = |status: &str, why: &str| {
                    answers
                        .entry(status.to_string())
                        .or_insert_with(|| answer(why).into());
                };
                if path != super::auth::HEALTH_PATH {
                    add("401", "No token, or the wrong one");
                }
                let has_query = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                if op.request_body.is_some() || has_path_params || has_query || changes {
                    add(
                        "400",
                        "The request is malformed (body, path or query); nothing was changed",
                    );
                }
                if has_path_params {
                    add("404", "Nothing has that name or UUID");
                }
                if changes {
                    add(
                        "503",
                        "A host the operation needs is down, or no host is SPM",
                    );
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "engine",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    /// The schema attributes spell the name rule out (they take only
    /// literals): they must say what the engine checks.
    #[test]
    fn every_name_field_states_the_engines_name_rule() {
        let doc = serde_json::to_value(super::ApiDoc::openapi()).expect("the document");
        for schema in ["AddHost", "CreateDomain", "CreateDisk"] {
            assert_eq!(
                doc["components"]["schemas"][schema]["properties"]["name"]["pattern"],
                ferry_api::engine::NAME_PATTERN,
                "{schema}"
            );
        }
    }
}
