//! An agent's enrolment (`POST /api/v1/enroll`): the one-time token names
//! the host; the engine's CA signs the agent's signing request for that
//! host; the certificate is pinned as the one the engine accepts from the
//! host, and the token is used up. A wrong, used or expired token changes
//! nothing.

use ferry_api::engine::{EnrolAnswer, EnrolRequest};

use crate::db::codec::now_ms;
use crate::db::CertRow;
use crate::engine::Engine;
use crate::error::{Error, Result};

fn refused() -> Error {
    Error::Unauthorized(
        "the enrolment token is unknown, already used or expired; get a new one with `ferry host enroll NAME` on the engine and run `ferry agent enroll` with it".into(),
    )
}

/// Enrolls the host whose pending token `req.token` is.
pub async fn enroll(engine: &Engine, req: EnrolRequest) -> Result<EnrolAnswer> {
    // The agent sends the secret part; the whole token is accepted too.
    let secret = ferry_pki::EnrolToken::parse(&req.token)
        .map(|t| t.secret)
        .unwrap_or_else(|| req.token.trim().to_string());
    let hash = ferry_pki::random::hash_secret(&secret);
    let host = engine
        .db()
        .host_by_enrolment(&hash)
        .await?
        .ok_or_else(refused)?;
    if host.enrol_expires.is_none_or(|t| t < now_ms()) {
        return Err(refused());
    }
    let issued = engine.pki().sign_host(&req.csr_pem, &host)?;
    let cert = CertRow::of(&issued.info);
    if !engine
        .db()
        .complete_enrolment(host.id, &hash, &cert)
        .await?
    {
        return Err(refused());
    }
    if let Some(row) = engine.db().host(host.id).await? {
        engine.pki().pins().set(&row);
    }
    engine.agents().forget(host.id);
    engine
        .events()
        .record(
            "host",
            format!(
                "host {} enrolled: its agent's certificate sha256:{} is accepted until {}",
                host.name,
                cert.fingerprint,
                crate::ops::certs::date(cert.not_after)
            ),
            Some(host.id),
        )
        .await;
    Ok(EnrolAnswer {
        host: host.name,
        cert_pem: issued.cert_pem,
        ca_pem: engine.pki().ca_pem().to_string(),
    })
}
