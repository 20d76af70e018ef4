//! Consoles that stream, and consoles that keep arriving: what a relay under redeploy serves.
//! For measuring that a hand-over refuses, resets and cuts nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use testkit::WsOutcome;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// A VM console that draws all the time: every connection gets 4 KiB every 50 ms. Returns its
/// port on 127.0.0.1.
pub async fn streaming_target() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let frame = [0x5au8; 4096];
                while s.write_all(&frame).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    port
}

/// How a streaming console ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The close code the relay sent; `None` when the connection broke without one.
    pub code: Option<u16>,
    pub at: Instant,
}

/// One open console, read by a task of its own.
pub struct Streaming {
    bytes: Arc<AtomicU64>,
    ended: tokio::task::JoinHandle<Ended>,
}

impl Streaming {
    /// Open a console at `url`; panics when it does not open (before any redeploy).
    pub async fn open(url: &str, ca: &Path) -> Streaming {
        let WsOutcome::Open(mut ws) = testkit::connect_ws(url, Some(ca)).await else { panic!("{url} refused a console") };
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = bytes.clone();
        let ended = tokio::spawn(async move {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Ended { code: Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005)), at: Instant::now() }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Ended { code: None, at: Instant::now() },
                }
            }
        });
        Streaming { bytes, ended }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn is_open(&self) -> bool {
        !self.ended.is_finished()
    }

    /// How it ended, waiting up to `within`.
    pub async fn ended(self, within: Duration) -> Option<Ended> {
        tokio::time::timeout(within, self.ended).await.ok().map(|r| r.unwrap())
    }
}

/// New consoles opened one after another (each closed again at once) until stopped: every
/// attempt that is refused or reset is kept with its reason.
pub struct Arrivals {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Arrivals {
    /// `urls` one per attempt (each with a ticket of its own).
    pub fn start(urls: Vec<String>, ca: PathBuf) -> Arrivals {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut opened, mut failed) = (0, Vec::new());
            for url in urls {
                if flag.load(Ordering::SeqCst) {
                    return (opened, failed);
                }
                match testkit::try_connect_ws(&url, Some(&ca)).await {
                    Ok(WsOutcome::Open(mut ws)) => {
                        opened += 1;
                        ws.send(Message::Close(None)).await.ok();
                    }
                    Ok(WsOutcome::Refused(status, body)) => failed.push(format!("{status} {}", body.trim())),
                    Err(e) => failed.push(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the arrivals ran out of tickets before they were stopped: sign more");
        });
        Arrivals { stop, task }
    }

    /// Stop; how many opened, and every failure.
    pub async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}
