//! Helpers shared by the end-to-end suites that drive the `rampart` binary.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::Child;
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when the test ends, pass or fail.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free at the time of asking.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to a minute) until a LAPI answers `/health` on 127.0.0.1:`port`.
pub(crate) fn wait_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.contains("\"up\"") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "LAPI did not come up on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
