//! An HTTP/2 client over cleartext with prior knowledge (h2c), on the `h2`
//! crate, for the protocol matrix: the caller decides the DATA frames (one
//! per element of [`Body::Chunked`]) and may end the stream with trailers
//! instead of an empty DATA frame. Envoy's `codec_type: AUTO` recognises the
//! HTTP/2 preface on the plain listener.
//!
//! The request body is written frame by frame, yielding to the connection
//! task between frames so they leave as separate frames rather than as one
//! coalesced write. Should Envoy answer before the body is complete (a local
//! reply such as a 413), a failure to send the rest is not an error: the
//! response is what the test wants to see.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::http::{Body, Request, Response, READ_TIMEOUT};
use crate::Error;

fn h2_error(context: &'static str) -> impl FnOnce(h2::Error) -> Error {
    move |e| Error::Http(format!("h2c {context}: {e}"))
}

/// Sends `req` over a fresh HTTP/2 connection and reads the whole response.
pub fn send(addr: SocketAddr, req: &Request) -> Result<Response, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io { context: "starting a tokio runtime".into(), source })?;
    runtime.block_on(async {
        match tokio::time::timeout(READ_TIMEOUT, exchange(addr, req)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Http(format!("h2c: no complete response within {READ_TIMEOUT:?}"))),
        }
    })
}

async fn exchange(addr: SocketAddr, req: &Request) -> Result<Response, Error> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Io { context: format!("connecting to {addr}"), source })?;
    tcp.set_nodelay(true).map_err(|source| Error::Io { context: "set_nodelay".into(), source })?;
    let (client, connection) = h2::client::handshake(tcp).await.map_err(h2_error("handshake"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.map_err(h2_error("connection not ready"))?;

    let mut head =
        http::Request::builder().method(req.method.as_str()).uri(format!("http://meshward.test{}", req.path));
    for (name, value) in &req.headers {
        head = head.header(name.as_str(), value.as_str());
    }
    let frames: Vec<Vec<u8>> = match &req.body {
        Body::Empty => Vec::new(),
        Body::Fixed(bytes) => {
            head = head.header("content-length", bytes.len());
            vec![bytes.clone()]
        }
        Body::Chunked(chunks) => chunks.clone(),
    };
    let head = head.body(()).map_err(|e| Error::Http(format!("h2c: building the request: {e}")))?;
    let ends_at_headers = frames.is_empty() && req.trailers.is_empty();
    let (response, mut stream) = client.send_request(head, ends_at_headers).map_err(h2_error("sending headers"))?;

    if !ends_at_headers {
        let count = frames.len();
        for (i, frame) in frames.into_iter().enumerate() {
            let last = i + 1 == count && req.trailers.is_empty();
            if stream.send_data(Bytes::from(frame), last).is_err() {
                break; // Answered early; the response tells why.
            }
            tokio::task::yield_now().await;
        }
        if !req.trailers.is_empty() {
            let mut trailers = http::HeaderMap::new();
            for (name, value) in &req.trailers {
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| Error::Http(format!("h2c: trailer name {name:?}: {e}")))?;
                let value = http::HeaderValue::from_str(value)
                    .map_err(|e| Error::Http(format!("h2c: trailer value {value:?}: {e}")))?;
                trailers.append(name, value);
            }
            let _ = stream.send_trailers(trailers);
        } else if count == 0 {
            let _ = stream.send_data(Bytes::new(), true);
        }
    }

    let response = response.await.map_err(h2_error("reading the response headers"))?;
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_error("reading the response body"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    driver.abort();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    Ok(Response { status: parts.status.as_u16(), headers, body: bytes, chunked: false })
}
