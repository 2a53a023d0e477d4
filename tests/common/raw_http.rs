//! Raw HTTP/1.1 requests, for bodies a service may refuse before reading them whole.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::app::{CB_PASSWORD, CB_USER};

/// A response as read off the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "status {}",
            self.status
        );
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// An error must be `{code, message}` and never a 5xx.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
}

/// One raw HTTP/1.1 request, written while the response is read, so a server that answers
/// early and closes does not make the test hang or fail on a broken pipe.
pub async fn raw_post(addr: std::net::SocketAddr, head: String, chunks: Vec<Vec<u8>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for c in chunks {
            wr.write_all(&c).await?;
        }
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let read = async {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 16 * 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .expect("responses carry a content-length");
                if buf.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let content_type = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-type")
                            .then(|| v.trim().to_string())
                    });
                    return Reply {
                        status,
                        content_type,
                        body: buf[end + 4..end + 4 + length].to_vec(),
                    };
                }
            }
            let n = rd.read(&mut tmp).await.expect("read the response");
            assert!(n > 0, "connection closed before a full response");
            buf.extend_from_slice(&tmp[..n]);
        }
    };
    let reply = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("answered within 20 s");
    writer.abort();
    reply
}

/// The `Authorization` header line of the test Chargebee webhook credentials.
pub fn auth_header() -> String {
    use base64::Engine;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{CB_USER}:{CB_PASSWORD}"));
    format!("Authorization: Basic {token}\r\n")
}
