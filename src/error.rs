//! The CLI's errors and exit codes.
//!
//! Exit codes (documented in README): 0 ok, 1 a check failed (verify, inspect), 2 bad usage or
//! bad input, 3 something in the environment is missing (a tool, a socket, a file the user did
//! not give). Every message names what failed and what to do next.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A check ran and found a problem (exit 1).
    Check,
    /// The user's input is wrong (exit 2).
    Usage,
    /// The environment lacks something (exit 3).
    Environment,
}

#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Usage, message: message.into() }
    }
    pub fn check(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Check, message: message.into() }
    }
    pub fn environment(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Environment, message: message.into() }
    }
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Check => 1,
            Kind::Usage => 2,
            Kind::Environment => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub type Result<T> = std::result::Result<T, Failure>;
