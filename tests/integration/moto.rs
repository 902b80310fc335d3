//! A real AWS-protocol server for tests: moto's server mode (`pip install 'moto[server]'`,
//! which `scripts/test.sh` does), started on a free loopback port and stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        // A free port can be taken by another test's listener between being found and moto
        // binding it: then moto exits, and it is started again on another port.
        let mut why = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(moto) => return moto,
                Err(e) => why = e,
            }
        }
        panic!("{why}")
    }

    fn try_start() -> Result<Moto, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} -m moto.server: {e}"));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        // Ready when moto itself answers on the port (not some other listener).
        while !answers_as_moto(port) {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!(
                    "moto's server exited ({status}) on port {port}: install it with pip \
                     install 'moto[server]' (scripts/test.sh does)"
                ));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "moto's server did not answer on port {port} within a minute"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }

    /// Environment for an AWS SDK client of this server: its endpoint, a region and
    /// credentials (moto accepts any), nothing from the user's own AWS configuration.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_SESSION_TOKEN", "testing".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when moto's own API answers on `port`.
fn answers_as_moto(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.starts_with("HTTP/1") && text.lines().next().is_some_and(|l| l.contains(" 200"))
}
