//! hyper's own answers made Docker-shaped. When a request cannot even be
//! parsed (a head larger than the limit, a URI over 64 KiB, a malformed
//! request line or header), hyper writes an answer itself, before any
//! service runs: a status line, `content-length: 0` and a date, nothing
//! else. [`rewrite`] turns such a head into the same status with a
//! `{"message": ...}` body, so every error a client reads is JSON; the
//! API's streams call it on what they are about to write (see
//! `stream.rs`).

/// The statuses hyper answers by itself, and what they mean here.
const CANNED: [(&[u8], &str); 3] = [
    (b"400", "malformed HTTP request"),
    (
        b"414",
        "request URI too long: at most 65,534 bytes are accepted",
    ),
    (
        b"431",
        "request line and headers too large (see --api-max-header-size)",
    ),
];

/// Whether `buf` may start a head hyper wrote by itself: a cheap test
/// before [`rewrite`].
pub fn may_be_canned(buf: &[u8]) -> bool {
    buf.len() < 512 && buf.starts_with(b"HTTP/1.1 4")
}

/// The Docker-shaped answer replacing `head` if it is one of hyper's own
/// bodiless error answers (`HTTP/1.1 431 ...`, `content-length: 0`, no
/// content type, nothing after the head); `None` for anything else.
pub fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    if !may_be_canned(head) || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text[..text.len() - 4].split("\r\n");
    let status_line = lines.next()?;
    let code = status_line.as_bytes().get(9..12)?;
    let message = CANNED.iter().find(|(c, _)| *c == code)?.1;
    let mut kept = Vec::new();
    let mut empty_body = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => empty_body = true,
            "content-length" | "content-type" | "transfer-encoding" => return None,
            _ => kept.push(line),
        }
    }
    if !empty_body {
        return None;
    }
    let body = serde_json::json!({ "message": message }).to_string();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Mon, 01 Jan 2024 00:00:00 GMT\r\n";

    #[test]
    fn hypers_own_answers_become_json() {
        for (code, reason, words) in [
            ("431", "Request Header Fields Too Large", "too large"),
            ("414", "URI Too Long", "URI too long"),
            ("400", "Bad Request", "malformed"),
        ] {
            let head = format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\n{DATE}\r\n");
            let out = rewrite(head.as_bytes()).unwrap_or_else(|| panic!("{code} kept"));
            let out = String::from_utf8(out).unwrap();
            let (new_head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(new_head.starts_with(&format!("HTTP/1.1 {code} {reason}\r\n")));
            assert!(new_head.contains("content-type: application/json"));
            assert!(new_head.contains(&format!("content-length: {}", body.len())));
            assert!(new_head.contains(DATE.trim_end()), "{new_head}");
            let value: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(
                value["message"].as_str().unwrap().contains(words),
                "{value}"
            );
        }
    }

    #[test]
    fn other_answers_are_left_alone() {
        for head in [
            // A status hyper never makes up.
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{DATE}\r\n"),
            // An answer with a body or a type: the service's own.
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n{DATE}\r\n"),
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n"
                .to_string(),
            "HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n".to_string(),
            // Not a whole head, or more than one.
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n".to_string(),
            "HTTP/1.1 431 X\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".to_string(),
            // Stream data that happens to look alike.
            "HTTP/1.1 4".to_string(),
            "log line: HTTP/1.1 400\r\n\r\n".to_string(),
        ] {
            assert_eq!(rewrite(head.as_bytes()), None, "{head:?}");
        }
    }
}
