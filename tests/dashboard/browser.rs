//! chromedriver and headless Chromium: found on PATH, started on a free
//! loopback port, and never left behind; DevTools commands through it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// chromedriver and the Chromium it drives.
pub(crate) struct Browser {
    driver: PathBuf,
    chromium: Option<PathBuf>,
}

impl Browser {
    /// Both programs, or `None` after saying why the test is skipped.
    ///
    /// # Panics
    ///
    /// When chromedriver is missing and `CI` is set.
    pub(crate) fn find() -> Option<Browser> {
        let driver = program("CHROMEDRIVER", &["chromedriver"]);
        let chromium = program(
            "CHROME_BIN",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        match driver {
            Some(driver) => Some(Browser { driver, chromium }),
            None if std::env::var_os("CI").is_some_and(|ci| !ci.is_empty()) => panic!(
                "the dashboard test needs chromedriver and Chromium: install them \
                 (Debian/Ubuntu: `apt-get install -y chromium chromium-driver`; \
                 scripts/test does it as root) or set CHROMEDRIVER and CHROME_BIN"
            ),
            None => {
                eprintln!(
                    "skipping the dashboard test: no chromedriver on PATH (install \
                     chromium and chromium-driver, or set CHROMEDRIVER)"
                );
                None
            }
        }
    }

    /// Starts chromedriver on a loopback port of its choosing, and a
    /// headless session.
    pub(crate) async fn open(&self) -> (Driver, Client) {
        let mut child = Command::new(&self.driver)
            .arg("--port=0")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.driver.display()));
        let stdout = child.stdout.take().expect("chromedriver's stdout");
        let driver = Driver(child);
        // "ChromeDriver was started successfully on port 46477."; then keep
        // reading, so that the pipe never fills.
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, port)) = line.split_once("started successfully on port ") {
                    let _ = port_tx.send(port.trim_end_matches('.').to_owned());
                }
            }
        });
        let port =
            tokio::task::spawn_blocking(move || port_rx.recv_timeout(Duration::from_secs(10)))
                .await
                .expect("wait for chromedriver")
                .expect("chromedriver did not say its port within 10 s");
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--no-first-run", "--disable-extensions",
            ],
        });
        if let Some(chromium) = &self.chromium {
            options["binary"] = json!(chromium);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::rustls()
            .expect("the WebDriver client")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("start a headless Chromium session");
        (driver, client)
    }
}

/// Makes rustls's `ring` provider the process default, which fantoccini's
/// client needs: rustls finds none on its own when, as here, both `ring`
/// (reqwest) and `aws-lc-rs` (fantoccini's hyper-rustls) are compiled in.
pub(crate) fn install_crypto_provider() {
    // Err: one is installed already, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `$env_var` if set, else the first of `names` on `PATH`.
fn program(env_var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// chromedriver in a process group of its own, which the Chromium it starts
/// joins: on drop the whole group gets SIGTERM, so that a test that fails
/// before closing its session leaves no browser behind.
pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Chrome DevTools command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(&'static str, Value);

type Url = reqwest::Url;

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, <Url as FromStr>::Err> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": self.1});
        (Method::POST, Some(body.to_string()))
    }
}

pub(crate) async fn cdp(client: &Client, command: &'static str, params: Value) {
    client
        .issue_cmd(Cdp(command, params))
        .await
        .unwrap_or_else(|e| panic!("DevTools {command}: {e}"));
}
