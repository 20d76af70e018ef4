//! A small RFB 3.8 server for the demo when Xvnc is not installed: VNC password
//! authentication, a fixed test pattern, raw encoding. Enough for noVNC to connect and show
//! the picture; not a desktop.
//!
//! The pattern: the top half is oVirt green (#3c8d2f), the bottom half eight colour bars, so a
//! screenshot can be checked by pixel.

use des::cipher::{BlockEncrypt, KeyInit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 400;
pub const GREEN: [u8; 3] = [0x3c, 0x8d, 0x2f];
const BARS: [[u8; 3]; 8] = [[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]];

/// The colour of a pixel of the test pattern.
pub fn pattern(x: u16, y: u16) -> [u8; 3] {
    if y < HEIGHT / 2 {
        GREEN
    } else {
        BARS[(x as usize * BARS.len()) / WIDTH as usize]
    }
}

/// Pixel format as the client asked (true colour only).
#[derive(Clone, Copy)]
struct PixelFormat {
    bpp: u8,
    big_endian: bool,
    max: [u16; 3],
    shift: [u8; 3],
}

impl PixelFormat {
    const DEFAULT: PixelFormat = PixelFormat { bpp: 32, big_endian: false, max: [255, 255, 255], shift: [16, 8, 0] };

    fn encode(&self, rgb: [u8; 3], out: &mut Vec<u8>) {
        let mut v: u32 = 0;
        for ((channel, max), shift) in rgb.iter().zip(self.max).zip(self.shift) {
            v |= (*channel as u32 * max as u32 / 255) << shift;
        }
        match (self.bpp, self.big_endian) {
            (32, false) => out.extend_from_slice(&v.to_le_bytes()),
            (32, true) => out.extend_from_slice(&v.to_be_bytes()),
            (16, false) => out.extend_from_slice(&(v as u16).to_le_bytes()),
            (16, true) => out.extend_from_slice(&(v as u16).to_be_bytes()),
            _ => out.push(v as u8),
        }
    }

    fn wire(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bpp;
        b[1] = 24;
        b[2] = self.big_endian as u8;
        b[3] = 1;
        b[4..6].copy_from_slice(&self.max[0].to_be_bytes());
        b[6..8].copy_from_slice(&self.max[1].to_be_bytes());
        b[8..10].copy_from_slice(&self.max[2].to_be_bytes());
        b[10] = self.shift[0];
        b[11] = self.shift[1];
        b[12] = self.shift[2];
        b
    }
}

/// DES response to a VNC challenge for a password (bits of each key byte reversed).
pub fn vnc_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new_from_slice(&key).expect("8-byte key");
    let mut out = *challenge;
    for block in out.chunks_mut(8) {
        cipher.encrypt_block(block.into());
    }
    out
}

/// Serve RFB on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, password: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let password = password.clone();
        tokio::spawn(async move {
            let _ = session(stream, &password).await;
        });
    }
}

async fn session(mut s: TcpStream, password: &str) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    if !handshake(&mut s, password).await? {
        return Ok(());
    }
    let mut format = PixelFormat::DEFAULT;
    let name = b"wsproxyctl demo test pattern";
    let mut init = Vec::new();
    init.extend_from_slice(&WIDTH.to_be_bytes());
    init.extend_from_slice(&HEIGHT.to_be_bytes());
    init.extend_from_slice(&format.wire());
    init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    init.extend_from_slice(name);
    s.write_all(&init).await?;
    let mut sent_full = false;
    loop {
        match s.read_u8().await? {
            0 => format = read_pixel_format(&mut s).await?,
            3 => {
                let mut b = [0u8; 9];
                s.read_exact(&mut b).await?;
                let incremental = b[0] != 0;
                // The picture never changes: answer the first and every non-incremental request.
                if !incremental || !sent_full {
                    s.write_all(&frame(&format)).await?;
                    sent_full = true;
                }
            }
            kind @ (2 | 4 | 5 | 6) => skip_message(&mut s, kind).await?,
            _ => return Ok(()),
        }
    }
}

/// Version, VNC authentication with `password`, ClientInit: true when the client may go on.
async fn handshake(s: &mut TcpStream, password: &str) -> std::io::Result<bool> {
    s.write_all(b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await?;
    s.write_all(&[1, 2]).await?;
    if s.read_u8().await? != 2 {
        return Ok(false);
    }
    let challenge: [u8; 16] = rand::random();
    s.write_all(&challenge).await?;
    let mut response = [0u8; 16];
    s.read_exact(&mut response).await?;
    if response != vnc_response(password, &challenge) {
        let reason = b"wrong password";
        s.write_u32(1).await?;
        s.write_u32(reason.len() as u32).await?;
        s.write_all(reason).await?;
        return Ok(false);
    }
    s.write_u32(0).await?;
    let _shared = s.read_u8().await?;
    Ok(true)
}

/// SetPixelFormat's body.
async fn read_pixel_format(s: &mut TcpStream) -> std::io::Result<PixelFormat> {
    let mut b = [0u8; 19];
    s.read_exact(&mut b).await?;
    Ok(PixelFormat {
        bpp: b[3],
        big_endian: b[5] != 0,
        max: [u16::from_be_bytes([b[7], b[8]]), u16::from_be_bytes([b[9], b[10]]), u16::from_be_bytes([b[11], b[12]])],
        shift: [b[13], b[14], b[15]],
    })
}

/// The body of a client message the test pattern ignores: SetEncodings (2), KeyEvent (4),
/// PointerEvent (5), ClientCutText (6, at most 1 MiB read).
async fn skip_message(s: &mut TcpStream, kind: u8) -> std::io::Result<()> {
    let head = match kind {
        2 => 3,
        5 => 5,
        _ => 7,
    };
    let mut b = [0u8; 7];
    s.read_exact(&mut b[..head]).await?;
    let rest = match kind {
        2 => usize::from(u16::from_be_bytes([b[1], b[2]])) * 4,
        6 => u32::from_be_bytes([b[3], b[4], b[5], b[6]]).min(1 << 20) as usize,
        _ => 0,
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip).await?;
    Ok(())
}

fn frame(format: &PixelFormat) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + WIDTH as usize * HEIGHT as usize * 4);
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&WIDTH.to_be_bytes());
    out.extend_from_slice(&HEIGHT.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            format.encode(pattern(x, y), &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_regions() {
        assert_eq!(pattern(10, 10), GREEN);
        assert_eq!(pattern(0, HEIGHT - 1), [255, 255, 255]);
        assert_eq!(pattern(WIDTH - 1, HEIGHT - 1), [0, 0, 0]);
    }

    #[test]
    fn encodes_little_endian_rgb() {
        let mut out = Vec::new();
        PixelFormat { bpp: 32, big_endian: false, max: [255; 3], shift: [0, 8, 16] }.encode(GREEN, &mut out);
        assert_eq!(out, vec![0x3c, 0x8d, 0x2f, 0]);
    }
}
