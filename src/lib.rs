//! `wsproxyctl` as a library: the verbs of the CLI, usable from tests and from `demo`.
//!
//! Layout: [`pki`] (certificates from the engine CA), [`https_get`] (the one HTTP client it
//! needs), [`fsutil`] (atomic writes), [`output`] and [`error`] (how results and failures reach
//! the user), [`steps`] (the step runner deploy and verify share), [`cli`] (the command line).

pub mod cli;
pub mod demo;
pub mod deploy;
pub mod error;
pub mod fsutil;
pub mod https_get;
pub mod image;
pub mod output;
pub mod pki;
pub mod render;
pub mod sessions;
pub mod spec;
pub mod steps;
pub mod ticket_sign;
pub mod verify;
