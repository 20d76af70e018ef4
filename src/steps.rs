//! One step runner for the verbs that work in steps (deploy, verify): each step is timed and
//! recorded as a [`StepReport`]. With an [`Output`] the runner also prints a line when a step
//! starts (a turning spinner on a terminal) and one when it ends; [`Steps::silent`] only
//! records (verify prints its steps in its report at the end).

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;
use crate::output::{Output, Tone};

/// One step as it ran: its name, whether it succeeded, how long it took, and what it found (or
/// why it failed).
#[derive(Debug, Serialize, Clone)]
pub struct StepReport {
    pub name: String,
    pub ok: bool,
    pub millis: u64,
    pub detail: String,
}

/// Runs steps and keeps their reports in `done`.
pub struct Steps<'a> {
    out: Option<&'a Output>,
    pub done: Vec<StepReport>,
}

impl<'a> Steps<'a> {
    /// Steps that print their progress to `out`.
    pub fn new(out: &'a Output) -> Self {
        Steps { out: Some(out), done: Vec::new() }
    }

    /// Steps that only record.
    pub fn silent() -> Self {
        Steps { out: None, done: Vec::new() }
    }

    /// Where progress goes, when it is printed.
    pub fn out(&self) -> Option<&'a Output> {
        self.out
    }

    /// Run a step whose failure ends the verb: its error is returned with the step's name as
    /// context.
    pub async fn run<T, F>(&mut self, name: &str, fut: F) -> Result<T>
    where
        F: Future<Output = Result<(T, String)>>,
    {
        let (result, millis) = self.timed(name, fut).await;
        match result {
            Ok((value, detail)) => {
                self.record(name, true, millis, detail);
                Ok(value)
            }
            Err(e) => {
                self.record(name, false, millis, e.to_string());
                Err(e.context(name))
            }
        }
    }

    /// Run a check whose failure is a finding, not an error: it is recorded with its reason and
    /// `None` comes back, so the caller can skip the checks that depend on it.
    pub async fn check<T, F>(&mut self, name: &str, fut: F) -> Option<T>
    where
        F: Future<Output = std::result::Result<(T, String), String>>,
    {
        let (result, millis) = self.timed(name, fut).await;
        match result {
            Ok((value, detail)) => {
                self.record(name, true, millis, detail);
                Some(value)
            }
            Err(why) => {
                self.record(name, false, millis, why);
                None
            }
        }
    }

    /// Whether every step so far succeeded.
    pub fn all_ok(&self) -> bool {
        self.done.iter().all(|s| s.ok)
    }

    /// Run `fut` with the start line (or spinner) printed, and time it. No spinner under -v,
    /// whose lines would tear it.
    async fn timed<F: Future>(&self, name: &str, fut: F) -> (F::Output, u64) {
        let start = Instant::now();
        let output = match self.out {
            Some(out) if out.animate() && !out.verbose() => spin(name, fut).await,
            Some(out) => {
                out.step(&format!("==> {name} ..."));
                fut.await
            }
            None => fut.await,
        };
        (output, start.elapsed().as_millis() as u64)
    }

    fn record(&mut self, name: &str, ok: bool, millis: u64, detail: String) {
        if let Some(out) = self.out {
            let verdict = if ok { out.paint(Tone::Good, "ok") } else { out.paint(Tone::Bad, "FAILED") };
            out.step(&if ok { format!("    {verdict} ({millis} ms): {detail}") } else { format!("    {verdict} ({millis} ms)") });
        }
        self.done.push(StepReport { name: name.into(), ok, millis, detail });
    }
}

/// Run `fut`, redrawing `name` with a turning spinner on stderr until it ends; the final line
/// is the plain step line, so the transcript reads the same as without a terminal.
async fn spin<F: Future>(name: &str, fut: F) -> F::Output {
    use std::io::Write as _;
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let mut fut = std::pin::pin!(fut);
    let period = Duration::from_millis(100);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    eprint!("\r{} {name} ...", FRAMES[0]);
    let _ = std::io::stderr().flush();
    let mut frame = 1;
    let output = loop {
        tokio::select! {
            out = &mut fut => break out,
            _ = tick.tick() => {
                eprint!("\r{} {name} ...", FRAMES[frame % FRAMES.len()]);
                let _ = std::io::stderr().flush();
                frame += 1;
            }
        }
    };
    eprintln!("\r\x1b[2K==> {name} ...");
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_run_is_an_error_in_context_and_a_failed_check_a_finding() {
        let mut steps = Steps::silent();
        assert_eq!(steps.check("dns", async { Ok((7, "resolved".to_string())) }).await, Some(7));
        assert_eq!(steps.check::<(), _>("tcp", async { Err("refused".to_string()) }).await, None);
        let e = steps.run::<(), _>("apply", async { Err(crate::error::Failure::check("forbidden")) }).await.unwrap_err();
        assert_eq!(e.to_string(), "apply: forbidden");
        let seen: Vec<_> = steps.done.iter().map(|s| (s.name.as_str(), s.ok, s.detail.as_str())).collect();
        assert_eq!(seen, [("dns", true, "resolved"), ("tcp", false, "refused"), ("apply", false, "forbidden")]);
        assert!(!steps.all_ok());
    }
}
