//! VeNCrypt negotiation against a fuzzed server: errors, never panics or hangs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let script = data.to_vec();
        let server_side = async move {
            let _ = server.write_all(&script).await;
            let _ = server.shutdown().await;
            // Keep reading what the client writes so it never blocks.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut server, &mut sink).await;
        };
        let client_side = async move {
            let _ = wsproxy::vencrypt::negotiate(&mut client).await;
        };
        tokio::join!(server_side, client_side);
    });
});
