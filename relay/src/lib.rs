//! `wsproxy`: an oVirt-compatible WebSocket-to-VNC relay.
//!
//! A browser running noVNC opens `wss://proxy:6100/<ticket>`; the relay verifies the ticket
//! the engine signed, connects the VM's console (plain TCP, VeNCrypt-TLS or a KubeVirt
//! websocket) and relays bytes. The modules follow that path: [`config`] -> [`server`]
//! ([`http`], [`ticket`], [`sessions`]) -> [`target`] ([`vencrypt`]) -> [`session`] (a byte or message pump, [`browser`], [`wsframe`]).
//!
//! This crate deliberately depends on no Kubernetes or container API: it is what ships in the
//! image.

// Public only what wsproxyctl, the integration tests, the benchmark, the fuzz targets and the
// `wsproxy` binary use; the rest is the relay's own (the server through [`Relay`]).
mod admin;
pub mod allow;
mod audit;
mod browser;
pub mod config;
mod end_reason;
pub mod fd_limit;
pub mod healthcheck;
pub mod http;
mod listener;
pub mod metrics;
pub mod real_client;
pub mod registry;
mod rehome;
pub mod reload;
mod replay;
pub mod runtime;
mod server;
mod session;
mod sessions;
mod start_error;
pub mod static_files;
mod target;
pub mod ticket;
pub mod tls;
pub mod vencrypt;
pub mod wsframe;

pub use config::Config;
pub use server::Relay;
pub use start_error::StartError;
