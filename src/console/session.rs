//! Console sessions: a signed, expiring cookie set after sign-in with an admin token, and the
//! CSRF token every state-changing form carries.
//!
//! Nothing is stored server-side. The cookie names the admin token it was opened with by a
//! fingerprint and is signed with a key derived from that token, so adding a token keeps
//! existing sessions and removing one (rotation) ends the sessions opened with it, on every
//! replica and across restarts.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::hex;
use crate::http::AppState;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const COOKIE: &str = "wcs_console";
/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Where a request without a valid session is sent.
pub const SIGN_IN: &str = "/console/sign-in";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

const VERSION: &str = "v1";

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// Random per sign-in; the CSRF token is bound to it.
    sid: String,
    key: [u8; 32],
}

impl Session {
    /// The token every POST form of this session must carry.
    pub fn csrf(&self) -> String {
        hex::encode(&mac(&self.key, &format!("csrf.{}", self.sid)))
    }

    fn check_csrf(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.csrf();
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }
}

fn mac(key: &[u8], message: &str) -> [u8; 32] {
    // HMAC accepts keys of any length; the fallback is never taken.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    m.update(message.as_bytes());
    m.finalize().into_bytes().into()
}

/// The signing key of sessions opened with `token`.
fn key_for(token: &str) -> [u8; 32] {
    mac(
        token.as_bytes(),
        "webcrm-chargebee-sync console session key v1",
    )
}

/// Names a token in the cookie without revealing it.
fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(format!("webcrm-chargebee-sync console token id v1:{token}"));
    hex::encode(&digest[..8])
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The cookie value of a new session for `token`, valid until `expires` (unix seconds).
pub fn issue(token: &str, expires: u64) -> String {
    let sid = hex::encode(&rand::random::<[u8; 16]>());
    let unsigned = format!("{VERSION}.{expires}.{}.{sid}", fingerprint(token));
    let sig = hex::encode(&mac(&key_for(token), &unsigned));
    format!("{unsigned}.{sig}")
}

/// The cookie value for a sign-in now.
pub fn issue_now(token: &str) -> String {
    issue(token, now_secs() + LIFETIME.as_secs())
}

/// The session a cookie value proves, if it is well-formed, unexpired, names a configured
/// token and carries that token's signature.
pub fn verify(state: &AppState, value: &str) -> Option<Session> {
    let (unsigned, sig) = value.rsplit_once('.')?;
    let mut parts = unsigned.split('.');
    let (version, expires, fp, sid) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != VERSION || parts.next().is_some() || sid.len() != 32 {
        return None;
    }
    let expires: u64 = expires.parse().ok()?;
    if expires <= now_secs() {
        return None;
    }
    let token = state
        .config
        .admin_tokens
        .iter()
        .map(|t| t.expose_secret())
        .find(|t| fingerprint(t) == fp)?;
    let key = key_for(token);
    let expected = hex::encode(&mac(&key, unsigned));
    use subtle::ConstantTimeEq;
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return None;
    }
    Some(Session {
        sid: sid.to_string(),
        key,
    })
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over HTTPS (directly behind a TLS proxy, or as the
/// configured public URL says), so the cookie is marked `Secure`.
pub fn over_https(state: &AppState, headers: &HeaderMap) -> bool {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let public = state
        .config
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https");
    forwarded || public
}

/// The `Set-Cookie` value that opens a session (or, with `value` empty, ends it).
pub fn set_cookie(value: &str, secure: bool) -> HeaderValue {
    let max_age = if value.is_empty() {
        0
    } else {
        LIFETIME.as_secs()
    };
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        cookie_value(&parts.headers, COOKIE)
            .and_then(|v| verify(state, v))
            .ok_or_else(|| {
                // A page asked for comes back after sign-in; a refused POST does not replay.
                // Under `/console` the router sees the path without its prefix.
                let uri = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or(&parts.uri, |o| &o.0);
                let to = match uri.path_and_query() {
                    Some(pq) if parts.method == axum::http::Method::GET => {
                        let next: String =
                            url::form_urlencoded::byte_serialize(pq.as_str().as_bytes()).collect();
                        format!("{SIGN_IN}?next={next}")
                    }
                    _ => SIGN_IN.to_owned(),
                };
                Redirect::to(&to).into_response()
            })
    }
}

/// Where to go after signing in: `next` when it is a console page of this site, else the
/// overview (never another host: `//evil` and `https://…` are refused).
pub fn after_sign_in(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains("//")
                && !n.contains('\\')
                && n != SIGN_IN
                && !n.starts_with("/console/sign-in") =>
        {
            n
        }
        _ => "/console",
    }
}

/// A POSTed form from a signed-in operator whose CSRF token matched: the only way a
/// console handler changes anything. Anything else is a 403 before the handler runs.
pub struct Checked {
    pub session: Session,
    pub fields: HashMap<String, String>,
}

impl Checked {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl FromRequest<AppState> for Checked {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(fields) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|_| forbidden())?;
        let given = fields.get(CSRF_FIELD).map(String::as_str).unwrap_or("");
        if !session.check_csrf(given) {
            return Err(forbidden());
        }
        Ok(Checked { session, fields })
    }
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token: reload the page and try again",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ_per_token_and_hide_it() {
        let a = fingerprint("token-a");
        assert_eq!(a.len(), 16);
        assert_ne!(a, fingerprint("token-b"));
        assert!(!a.contains("token"));
    }

    #[test]
    fn cookie_values_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; wcs_console=v1.x; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("v1.x"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
