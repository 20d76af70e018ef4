//! Real load balancers in front of a relay, as operators run them: HAProxy (Debian's package)
//! in TCP mode sending PROXY protocol v2, and nginx (Debian's package) proxying the websocket
//! to the relay's TLS port with `X-Forwarded-For`. Each listens on 127.0.0.1:`front` and is
//! stopped when its [`crate::Proc`] drops; its configuration and log stay in `dir`.

use std::path::Path;
use std::process::Command;

use crate::{require_tool, Proc};

/// HAProxy on `front`, passing TCP (TLS untouched) to the relay at 127.0.0.1:`relay` with a
/// PROXY protocol v2 header (`send-proxy-v2`).
pub fn haproxy_send_proxy_v2(dir: &Path, front: u16, relay: u16) -> Proc {
    require_tool("haproxy");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend consoles\n  bind 127.0.0.1:{front}\n  default_backend relays\n\
             backend relays\n  server relay 127.0.0.1:{relay} send-proxy-v2\n"
        ),
    )
    .unwrap();
    Proc::spawn(Command::new("haproxy").arg("-db").arg("-f").arg(&cfg), dir.join("haproxy.log"), front)
}

/// nginx on `front` (plain HTTP), re-encrypting to the relay at https://127.0.0.1:`relay`,
/// passing the websocket upgrade on and appending the client's address to
/// `X-Forwarded-For`.
pub fn nginx_x_forwarded_for(dir: &Path, front: u16, relay: u16) -> Proc {
    require_tool("nginx");
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {pid};\nerror_log {err} info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n\
           server {{\n    listen 127.0.0.1:{front};\n    location / {{\n\
               proxy_pass https://127.0.0.1:{relay};\n      proxy_http_version 1.1;\n\
               proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection \"upgrade\";\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_read_timeout 1h;\n    }}\n  }}\n}}\n",
        pid = prefix.join("nginx.pid").display(),
        err = prefix.join("logs/error.log").display(),
        tmp = prefix.display(),
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    Proc::spawn(Command::new("nginx").arg("-p").arg(&prefix).arg("-c").arg(&conf_path), dir.join("nginx.log"), front)
}
