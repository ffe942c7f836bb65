//! Certificate rotation without a restart: the engine renews its own
//! certificates (servers and clients use them from their next
//! connection) and each host's over the mutual TLS it already has. The
//! agent makes a new key and answers a signing request; the CA signs it;
//! the new certificate is pinned beside the old one while the agent
//! installs it, then alone. No VM, move or request in flight notices.
//!
//! The engine does it by itself, hourly, for whatever is within
//! `ferry_pki::ca::RENEW_BEFORE` of its end; `ferry engine rotate-certs`
//! (`POST /api/v1/certificates/rotate`) does it now.

use std::sync::Weak;
use std::time::Duration;

use ferry_api::engine::{CertificateSummary, Certificates, HostStatus, RotateCertificates};
use ferry_pki::{CertInfo, Fingerprint};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{CertRow, HostRow};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::resolve_host;
use crate::pki::{due, summary};

/// How often the engine looks for certificates near their end.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// A date for messages: `YYYY-MM-DD` (UTC) of epoch seconds.
pub fn date(epoch_secs: u64) -> String {
    let days = i64::try_from(epoch_secs / 86_400).unwrap_or(0);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A time of day to the second, `YYYY-MM-DDTHH:MM:SS` (UTC) of epoch
/// seconds, for the oVirt API's times and the CLI's event log.
pub fn date_time(epoch_secs: u64) -> String {
    let of_day = epoch_secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}",
        date(epoch_secs),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Every certificate the engine knows: its own and each enrolled host's.
pub async fn certificates(engine: &Engine) -> Result<Certificates> {
    let hosts = engine
        .db()
        .hosts()
        .await?
        .into_iter()
        .filter_map(|h| {
            h.cert.map(|c| CertificateSummary {
                owner: h.name,
                fingerprint: c.fingerprint,
                not_after: c.not_after,
                error: None,
            })
        })
        .collect();
    Ok(Certificates {
        engine: engine.pki().summaries(),
        hosts,
    })
}

/// Renews the engine's certificates and those of the hosts asked (every
/// enrolled host when none is named) now. A host that cannot be renewed
/// (down, refusing) is reported with why, and keeps its certificate.
pub async fn rotate(engine: &Engine, req: RotateCertificates) -> Result<Certificates> {
    let mut hosts = Vec::new();
    for key in &req.hosts {
        hosts.push(resolve_host(engine, key).await?);
    }
    if req.hosts.is_empty() {
        hosts = engine.db().hosts().await?;
    }
    engine.pki().renew_engine(true)?;
    engine
        .events()
        .record(
            "certificates",
            "the engine's certificates were renewed",
            None,
        )
        .await;
    let mut out = Vec::new();
    for h in hosts.into_iter().filter(|h| h.cert.is_some()) {
        out.push(match rotate_host(engine, &h).await {
            Ok(info) => summary(&h.name, &info, None),
            Err(e) => CertificateSummary {
                owner: h.name.clone(),
                fingerprint: h
                    .cert
                    .as_ref()
                    .map(|c| c.fingerprint.clone())
                    .unwrap_or_default(),
                not_after: h.cert.as_ref().map_or(0, |c| c.not_after),
                error: Some(e.full_text()),
            },
        });
    }
    Ok(Certificates {
        engine: engine.pki().summaries(),
        hosts: out,
    })
}

/// Renews one host's certificate over its agent's mutual TLS.
pub async fn rotate_host(engine: &Engine, host: &HostRow) -> Result<CertInfo> {
    if host.status != HostStatus::Up {
        return Err(Error::Unavailable(format!(
            "host {} is {}: its certificate can be renewed once its agent answers",
            host.name,
            serde_plain(host.status)
        )));
    }
    settle(engine, host).await?;
    let client = engine.agents().client_for(host);
    let request = client
        .request_cert()
        .await
        .map_err(Error::agent(&host.name))?;
    let issued = engine.pki().sign_host(&request.csr_pem, host)?;
    let next = issued.info.fingerprint.to_string();
    engine.db().set_host_next_cert(host.id, Some(&next)).await?;
    pin_row(engine, host).await?;
    client
        .install_cert(&issued.cert_pem)
        .await
        .map_err(Error::agent(&host.name))?;
    engine
        .db()
        .set_host_cert(host.id, &CertRow::of(&issued.info))
        .await?;
    pin_row(engine, host).await?;
    engine
        .events()
        .record(
            "certificates",
            format!(
                "host {}'s certificate was renewed: sha256:{} until {}",
                host.name,
                issued.info.fingerprint,
                date(u64::try_from(issued.info.not_after).unwrap_or(0))
            ),
            Some(host.id),
        )
        .await;
    Ok(issued.info)
}

/// A renewal an earlier attempt left half-done (the new certificate
/// signed and perhaps installed, the answer lost) is settled first: the
/// certificate the agent serves now becomes the one accepted.
async fn settle(engine: &Engine, host: &HostRow) -> Result<()> {
    let Some(next) = host.next_fingerprint.as_deref() else {
        return Ok(());
    };
    // A new connection shows which certificate the agent serves.
    engine.agents().forget(host.id);
    engine
        .agents()
        .client_for(host)
        .health()
        .await
        .map_err(Error::agent(&host.name))?;
    let seen = engine.pki().pins().seen(host.id);
    if let Some(info) = seen.filter(|i| Some(i.fingerprint) == Fingerprint::parse(next)) {
        engine
            .db()
            .set_host_cert(host.id, &CertRow::of(&info))
            .await?;
    } else {
        engine.db().set_host_next_cert(host.id, None).await?;
    }
    pin_row(engine, host).await
}

async fn pin_row(engine: &Engine, host: &HostRow) -> Result<()> {
    if let Some(row) = engine.db().host(host.id).await? {
        engine.pki().pins().set(&row);
    }
    Ok(())
}

fn serde_plain(status: HostStatus) -> &'static str {
    match status {
        HostStatus::Up => "up",
        HostStatus::Down => "down",
        HostStatus::Enrolling => "enrolling",
    }
}

/// Renews whatever is near its end: the engine's certificates, and the
/// hosts' that are up. Failures are logged and tried again next time.
pub async fn renew_due(engine: &Engine) {
    match engine.pki().renew_engine(false) {
        Ok(true) => {
            engine
                .events()
                .record(
                    "certificates",
                    "the engine's certificates were renewed before their end",
                    None,
                )
                .await;
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(
            "renewing the engine's certificates failed: {}",
            e.full_text()
        ),
    }
    let hosts = match engine.db().hosts().await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(
                "cannot list hosts to renew their certificates: {}",
                e.full_text()
            );
            return;
        }
    };
    for h in hosts {
        let due = h.cert.as_ref().is_some_and(|c| due(c.not_after));
        if due && h.status == HostStatus::Up {
            if let Err(e) = rotate_host(engine, &h).await {
                tracing::warn!(host = %h.name, "renewing the host's certificate failed: {}", e.full_text());
            }
        }
    }
}

/// Runs [`renew_due`] every [`CHECK_EVERY`] until `stop` turns true.
pub(crate) fn spawn(engine: Weak<Engine>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Some(e) = engine.upgrade() else { break };
            renew_due(&e).await;
            drop(e);
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_798_675_200), "2026-12-31");
    }
}
