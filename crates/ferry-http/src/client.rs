//! The base of Ferry's typed HTTP clients (the agent's, the engine's):
//! URLs built from percent-encoded segments, TLS with Ferry's own trust
//! (the engine's CA, a client certificate for mutual TLS), the bearer
//! token where the peer wants one, a deadline on every request, and error
//! answers read back into their [`ErrorKind`] so callers decide on the
//! kind, not the words.

use std::time::Duration;

use ferry_api::{ApiError, ErrorKind};
use ferry_pki::ClientTls;
use reqwest::RequestBuilder;
pub use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::chain_text;

/// How long to wait for a connection: a peer that is down should be
/// reported in seconds, not after TCP's minutes of retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take unless a client says otherwise: long
/// enough for the slowest synchronous verb (a switch that waits for
/// QEMU), short enough that a hung peer is noticed.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong talking to a peer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer answered with an error.
    #[error("{service} at {url} answered {status}: {message}")]
    Api {
        /// Who was asked ("the agent", "the engine").
        service: &'static str,
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// What kind of error the peer said it is.
        kind: ErrorKind,
        /// The peer's sentence.
        message: String,
    },
    /// The peer could not be reached, did not answer in time, or its
    /// answer could not be read.
    #[error("could not talk to {service} at {url}")]
    Transport {
        /// Who was asked.
        service: &'static str,
        /// The request's URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The URL given for the peer is not a URL.
    #[error("'{url}' is not a usable URL for {service} ({reason}); give https://<host>:<port>")]
    BadUrl {
        /// Who was to be asked.
        service: &'static str,
        /// What was given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Something waited for (a task, a job) did not end in the time given.
    #[error("{what} after {waited:?}")]
    Timeout {
        /// What was still going on at the last look, as a sentence.
        what: String,
        /// How long was waited.
        waited: Duration,
    },
}

impl ClientError {
    /// What kind of error it is: the peer's own kind when it answered; a
    /// peer that could not be reached or did not finish in time is
    /// unavailable (it may be restarting).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Api { kind, .. } => *kind,
            ClientError::Transport { .. } | ClientError::Timeout { .. } => ErrorKind::Unavailable,
            ClientError::BadUrl { .. } => ErrorKind::BadRequest,
        }
    }

    /// The HTTP status, when the peer answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport { source, .. } => source.status(),
            ClientError::BadUrl { .. } | ClientError::Timeout { .. } => None,
        }
    }

    /// The peer's own sentence, or this error's text with its causes.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            other => chain_text(other),
        }
    }
}

/// A client of one peer: its base URL, the path prefix of its API, the
/// token it wants (if any) and how it is trusted.
#[derive(Clone)]
pub struct HttpClient {
    service: &'static str,
    base: String,
    prefix: &'static [&'static str],
    token: Option<String>,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("service", &self.service)
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client of `service` ("the agent") at `url` (`https://host:port`),
    /// whose API lives under the path segments `prefix`, presenting
    /// `token` as a bearer token when given, and speaking TLS with `tls`
    /// (without it, an `https://` URL is refused: no peer is trusted by
    /// default, since Ferry's peers are trusted through Ferry's CA).
    pub fn new(
        service: &'static str,
        url: impl Into<String>,
        prefix: &'static [&'static str],
        token: Option<String>,
        tls: Option<&ClientTls>,
    ) -> Self {
        let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls((*tls.0).clone());
        }
        // The builder fails only on a TLS setting it cannot use; the bare
        // client that replaces it trusts no certificate, so it fails
        // closed.
        let http = builder.build().unwrap_or_else(|e| {
            tracing::warn!("could not set up the HTTP client's TLS ({e}); HTTPS will be refused");
            reqwest::Client::new()
        });
        HttpClient {
            service,
            base: url.into().trim().trim_end_matches('/').to_string(),
            prefix,
            token,
            http,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The same client with another deadline for each request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The peer's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `<base>/<prefix…>/<segments…>`, each segment percent-encoded (a
    /// name is one path segment, whatever it holds).
    pub fn endpoint(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let bad = |reason: String| ClientError::BadUrl {
            service: self.service,
            url: self.base.clone(),
            reason,
        };
        let mut url = Url::parse(&self.base).map_err(|e| bad(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| bad("it cannot have a path".into()))?
            .pop_if_empty()
            .extend(self.prefix)
            .extend(segments);
        Ok(url)
    }

    /// `GET` of `segments`, decoded.
    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        let url = self.endpoint(segments)?;
        self.send(Method::GET, url, None::<&()>).await
    }

    /// `POST` of `body` (JSON) to `segments`, the answer decoded.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.endpoint(segments)?;
        self.send(Method::POST, url, Some(body)).await
    }

    /// `POST` without a body to `segments`, the answer decoded.
    pub async fn post_empty<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        let url = self.endpoint(segments)?;
        self.send(Method::POST, url, None::<&()>).await
    }

    /// `DELETE` of `segments`; the answer's body is not read.
    pub async fn delete(&self, segments: &[&str]) -> Result<(), ClientError> {
        let url = self.endpoint(segments)?;
        self.answer(Method::DELETE, url, None::<&()>)
            .await
            .map(|_| ())
    }

    /// Sends `method` to `url` (from [`HttpClient::endpoint`], with a query
    /// string if need be) with an optional JSON body, the answer decoded.
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let text_url = url.to_string();
        let resp = self.answer(method, url, body).await?;
        resp.json().await.map_err(|source| ClientError::Transport {
            service: self.service,
            url: text_url,
            source,
        })
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.http.request(method, url).timeout(self.timeout);
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// A successful answer, or the error it stands for.
    async fn answer<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let text_url = url.to_string();
        let mut req = self.request(method, url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            service: self.service,
            url: text_url.clone(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let (message, kind) = match serde_json::from_str::<ApiError>(&text) {
            Ok(body) => (body.error, body.kind),
            Err(_) => (text, ErrorKind::from_http_status(status.as_u16())),
        };
        Err(ClientError::Api {
            service: self.service,
            url: text_url,
            status,
            kind,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_encoded_path_segments_under_the_prefix() {
        let c = HttpClient::new(
            "the engine",
            "http://127.0.0.1:8000/",
            &["api", "v1"],
            None,
            None,
        );
        let url = c.endpoint(&["disks", "a b/c", "move"]).expect("a URL");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/api/v1/disks/a%20b%2Fc/move"
        );
        let bad = HttpClient::new("the engine", "not a url", &["api", "v1"], None, None);
        let e = bad.endpoint(&["hosts"]).expect_err("refused");
        assert!(matches!(e, ClientError::BadUrl { .. }));
        assert_eq!(e.kind(), ErrorKind::BadRequest);
    }
}
