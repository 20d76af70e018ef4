//! A few static files under `/novnc/` (WSPROXY_NOVNC_DIR), so a demo or test can open noVNC
//! from the relay's own origin, trusting the same certificate. Not a general web server: no
//! directory listings, no dot files, no path outside the directory.

use std::path::{Component, Path};

use tokio::io::AsyncWrite;

use crate::http;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Resolve a request path (after `/novnc`) to a file inside `dir`, or None when it would leave
/// the directory or names a hidden file.
pub fn resolve(dir: &Path, rel: &str) -> Option<std::path::PathBuf> {
    let rel = percent_encoding::percent_decode_str(rel).decode_utf8().ok()?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') { format!("{rel}vnc.html") } else { rel.to_string() };
    let mut out = dir.to_path_buf();
    for component in Path::new(&rel).components() {
        match component {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => out.push(part),
            _ => return None,
        }
    }
    Some(out)
}

/// Answer one request for a static file.
pub async fn serve<S: AsyncWrite + Unpin>(stream: &mut S, dir: &Path, rel: &str) -> std::io::Result<()> {
    let Some(path) = resolve(dir, rel) else {
        return http::respond(stream, 404, "not found\n").await;
    };
    match tokio::fs::read(&path).await {
        Ok(body) => http::respond_with(stream, 200, content_type(&path), &body).await,
        Err(_) => http::respond(stream, 404, "not found\n").await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside() {
        let d = Path::new("/srv/novnc");
        assert_eq!(resolve(d, "/"), Some("/srv/novnc/vnc.html".into()));
        assert_eq!(resolve(d, "/core/rfb.js"), Some("/srv/novnc/core/rfb.js".into()));
        assert_eq!(resolve(d, "/../etc/passwd"), None);
        assert_eq!(resolve(d, "/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(d, "/.git/config"), None);
    }
}
