//! A `fleet-breaker` process the test talks to while it runs: its output
//! read line by line as it comes, signals sent with `kill`, its exit waited
//! for with a bound; and raw loopback clients of its listener.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::poll_blocking;

/// A running binary, killed and reaped on drop.
pub(crate) struct Running {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Spawns `command` with its stdout and stderr piped and read.
    pub(crate) fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// The first stdout line (from now on) containing `needle`, waiting up
    /// to `bound`; panics with the output so far.
    pub(crate) fn wait_line(&mut self, needle: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no line with {needle:?} within {bound:?}; stdout:\n{}\nstderr:\n{}",
                    self.stdout.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// `http://127.0.0.1:PORT` from the "listening on" line.
    pub(crate) fn addr(&mut self) -> String {
        let line = self.wait_line("listening on ", Duration::from_secs(20));
        line.split("listening on ").nth(1).unwrap().to_owned()
    }

    /// Sends the signal `name` (INT, TERM) with `kill`.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {name}");
    }

    /// The exit status, if the process ends within `bound`.
    pub(crate) fn exit_within(&mut self, bound: Duration) -> Option<ExitStatus> {
        poll_blocking(bound, Duration::from_millis(10), || {
            self.child.try_wait().expect("try_wait")
        })
    }

    /// Every stdout line read so far and any left (after the exit).
    pub(crate) fn stdout(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.stdout.push(line);
        }
        self.stdout.join("\n")
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `host:port` of an `http://host:port` address.
pub(crate) fn host(addr: &str) -> &str {
    addr.trim_start_matches("http://")
}

/// A raw connection to `addr` that has sent `bytes`.
pub(crate) fn connect(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(host(addr)).expect("connect");
    stream.write_all(bytes).expect("send");
    stream
}

/// An SSE client of `addr`, once its stream has started (200 and the
/// event-stream type read).
pub(crate) fn sse_client(addr: &str) -> TcpStream {
    let mut stream = connect(
        addr,
        b"GET /api/circuit-breaker/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5));
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
        "{head}"
    );
    stream
}

/// Reads `stream` until `needle` or EOF, within `bound`: what was read.
pub(crate) fn read_until(stream: &mut TcpStream, needle: &str, bound: Duration) -> String {
    let deadline = Instant::now() + bound;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Whether the server closes `stream` within `bound` (what it sent first,
/// if anything, is read and dropped).
pub(crate) fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
