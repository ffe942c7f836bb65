//! `/api/v1/jobs` and `/api/v1/events`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use ferry_api::engine::{ApiError, Event, Job};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::extract::{ApiPath, ApiQuery};
use crate::engine::Engine;
use crate::error::Result;
use crate::ops;

/// Every job.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, description = "Every job, newest first", body = [Job])))]
pub(crate) async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<Job>>> {
    ops::jobs::jobs(&engine).await.map(Json)
}

/// One job with its steps.
#[utoipa::path(get, path = "/api/v1/jobs/{job}", tag = "jobs",
    params(("job" = String, Path, description = "The job's UUID")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job", body = ApiError),
    ))]
pub(crate) async fn get(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Job>> {
    ops::jobs::job(&engine, &key).await.map(Json)
}

/// Cancel a job (possible until `finalizeBlockMigrate`).
#[utoipa::path(post, path = "/api/v1/jobs/{job}/cancel", tag = "jobs",
    params(("job" = String, Path, description = "The job's UUID")),
    responses(
        (status = 200, description = "The job, cancelling", body = Job),
        (status = 404, description = "No such job", body = ApiError),
        (status = 409, description = "Too late to cancel", body = ApiError),
    ))]
pub(crate) async fn cancel(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Job>> {
    ops::jobs::cancel(&engine, &key).await.map(Json)
}

/// Carry on a job that failed after the switch to the destination, from
/// the step that failed (once its cause is fixed).
#[utoipa::path(post, path = "/api/v1/jobs/{job}/retry", tag = "jobs",
    params(("job" = String, Path, description = "The job's UUID")),
    responses(
        (status = 200, description = "The job, running again", body = Job),
        (status = 404, description = "No such job", body = ApiError),
        (status = 409, description = "Not a job that failed past the switch point", body = ApiError),
    ))]
pub(crate) async fn retry(
    State(engine): State<Arc<Engine>>,
    ApiPath(key): ApiPath,
) -> Result<Json<Job>> {
    ops::jobs::retry(&engine, &key).await.map(Json)
}

/// `GET /api/v1/events` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// How many events, newest first (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// Only the events about this job, host, VM, disk or domain (its id):
    /// a job's own story, its copies that failed and were made again
    /// included.
    object: Option<uuid::Uuid>,
    /// Only the events after this one (its `id`): the first `limit` of
    /// them, still newest first. What `ferry event list --follow` asks
    /// for, so that it misses none however many come at once.
    after: Option<i64>,
}

/// The event log.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, description = "The last events, newest first", body = [Event]),
        (status = 400, description = "Bad limit", body = ApiError),
    ))]
pub(crate) async fn events(
    State(engine): State<Arc<Engine>>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<Vec<Event>>> {
    ops::events::events(&engine, q.limit, q.object, q.after)
        .await
        .map(Json)
}
