//! How the browser encodes RFB in websocket messages, and the base64 decoding the old
//! clients need. A leaf.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// How the browser encodes RFB in websocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Subprotocol `binary` (noVNC) or none: binary messages.
    Binary,
    /// Subprotocol `base64` (old clients): text messages holding base64.
    Base64,
}

pub(crate) const TEXT_ON_BINARY: &str = "browser sent a text message on a binary session";

pub(crate) fn decode_base64(text: &[u8]) -> Result<Vec<u8>, String> {
    STANDARD.decode(text.trim_ascii()).map_err(|_| "browser sent invalid base64".to_string())
}
