//! The target side ("the VM"): small TCP servers, one per behaviour.
//! - `Discard`: reads an 8-byte length, then that many bytes, then answers one byte.
//! - `Source`: reads an 8-byte length, then writes that many bytes.
//! - `Echo`: echoes everything.
//! - `Hello`: writes one byte on connect (proves the session reached the target), then holds.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Discard,
    Source,
    Echo,
    Hello,
}

pub async fn start(mode: Mode) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = serve(s, mode).await;
            });
        }
    });
    port
}

/// [`start`] on a thread and runtime of its own: the echo target of the latency probes, so a
/// round trip never waits behind the streaming sessions' sinks in the main runtime.
pub fn start_on_own_thread(mode: Mode) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("sink runtime");
        rt.block_on(async move {
            tx.send(start(mode).await).expect("port");
            std::future::pending::<()>().await
        })
    });
    rx.recv().expect("sink thread started")
}

async fn serve(mut s: TcpStream, mode: Mode) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    match mode {
        Mode::Discard => {
            let mut left = s.read_u64().await?;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = s.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Ok(());
                }
                left -= n as u64;
            }
            s.write_all(&[1]).await
        }
        Mode::Source => {
            let mut left = s.read_u64().await?;
            while left > 0 {
                let n = left.min(64 * 1024) as usize;
                s.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
            // Hold until the client closes.
            let _ = s.read(&mut buf).await;
            Ok(())
        }
        Mode::Echo => loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n]).await?;
        },
        Mode::Hello => {
            s.write_all(&[7]).await?;
            let _ = s.read(&mut buf).await;
            Ok(())
        }
    }
}
