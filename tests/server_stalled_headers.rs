//! A connection that never finishes its request headers is not held past the request
//! timeout (a "slowloris" client): the server closes it (or answers 408).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;

#[test]
fn a_connection_stalled_mid_headers_is_closed_after_the_request_timeout() {
    let s = TestServer::start(&["--request-timeout-ms", "500"]);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.write_all(b"GET /tables HTTP/1.1\r\nHost: x\r\n").expect("write");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    match c.read(&mut buf) {
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || text.contains(" 408 "), "unexpected answer: {text}");
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "connection still open {:?} after a 500 ms request timeout ({e}): headers are never timed out",
            start.elapsed()
        ),
    }
    // The server goes on serving others.
    s.get("/health").expect(200);
}
