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

/// A failure of a verb: its exit-code kind, what failed (phrased for the operator: the cause
/// and the next step), and optionally the error underneath it. `Display` prints the whole
/// chain, outermost first: `deploy: cannot reach the API server: connection refused`.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Usage, message: message.into(), source: None }
    }
    pub fn check(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Check, message: message.into(), source: None }
    }
    pub fn environment(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Environment, message: message.into(), source: None }
    }

    /// Keep the error this failure comes from (an io or API error); it is printed after the
    /// message, so the message need not repeat it.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Say what was being done when this failed: the result has the same exit-code kind, `what`
    /// as its message and this failure as its source.
    pub fn context(self, what: impl Into<String>) -> Self {
        Failure { kind: self.kind, message: what.into(), source: Some(Box::new(self)) }
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
        f.write_str(&self.message)?;
        let mut cause = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cause {
            // A wrapped Failure prints its own chain; stop after it.
            if let Some(inner) = e.downcast_ref::<Failure>() {
                return write!(f, ": {inner}");
            }
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// `.context("what was being done")` on a [`Result`], as on a [`Failure`].
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_printed_outermost_first_and_keeps_the_kind() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let inner = Failure::environment("cannot reach the API server").with_source(io);
        let outer: Result<()> = Err(inner).context("deploy");
        let outer = outer.unwrap_err();
        assert_eq!(outer.to_string(), "deploy: cannot reach the API server: connection refused");
        assert_eq!(outer.exit_code(), 3);
        let source = std::error::Error::source(&outer).unwrap();
        assert_eq!(source.to_string(), "cannot reach the API server: connection refused");
    }
}
