//! Reading a JSON request body with errors a person can act on, shared by
//! the agent's and the engine's APIs (axum's own `Json` rejects with plain
//! text and insists on a content type).

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// Reads and decodes the body of `req`. On failure returns a sentence for a
/// 400 answer, ending with `docs` (where the fields are documented).
pub async fn read<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    docs: &str,
) -> Result<T, String> {
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| format!("the request body could not be read: {}", e.body_text()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "the request body is empty; send a JSON object with the documented fields{docs}"
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let what = if e.is_data() {
            "does not have the expected fields"
        } else {
            "is not valid JSON"
        };
        format!(
            "the request body {what} ({e}); send a JSON object with the documented fields{docs}"
        )
    })
}
