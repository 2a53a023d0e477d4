//! The console's stylesheet and script, embedded in the binary. Their URLs carry a hash of
//! their content, so they can be cached for a year and still change with a new release.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub struct Asset {
    pub name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    version: LazyLock<String>,
}

impl Asset {
    /// The URL pages link to.
    pub fn url(&self) -> String {
        format!("/console/assets/{}?v={}", self.name, *self.version)
    }
}

fn version(body: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(body)[..6])
}

pub static CSS: Asset = Asset {
    name: "console.css",
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../../assets/console.css"),
    version: LazyLock::new(|| version(include_bytes!("../../assets/console.css"))),
};

pub static JS: Asset = Asset {
    name: "console.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../assets/console.js"),
    version: LazyLock::new(|| version(include_bytes!("../../assets/console.js"))),
};

/// `GET /console/assets/{name}`: needs no session (it holds no data), so the sign-in page
/// is styled too.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = [&CSS, &JS].into_iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
