//! A custom discovery backend: peer addresses read from a file, one per line, re-read every
//! few seconds (a stand-in for DNS, a cloud API or a service registry).
//!
//! Plug it into a node with the facade:
//!
//! ```text
//! let espial = espial::Espial::builder()
//!     .discovery(FileDiscovery::new("/etc/myapp/peers.txt", Duration::from_secs(5)))
//!     .start().await?;
//! ```
//!
//! This example opens no socket: it writes a peers file, then polls the backend the way the
//! driver does and prints each batch.
//!
//! Run: `cargo run -p espial-net --example file_discovery`

use async_trait::async_trait;
use espial_net::Discovery;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Reads `ip:port` lines from a file (blank lines and `#` comments ignored).
struct FileDiscovery {
    path: PathBuf,
    every: Duration,
    first: bool,
    me: Option<SocketAddr>,
}

impl FileDiscovery {
    fn new(path: impl Into<PathBuf>, every: Duration) -> Self {
        FileDiscovery {
            path: path.into(),
            every,
            first: true,
            me: None,
        }
    }
}

#[async_trait]
impl Discovery for FileDiscovery {
    async fn announce(&mut self, me: SocketAddr) -> std::io::Result<()> {
        // A registry backend would publish `me` here; a file backend just skips itself.
        self.me = Some(me);
        Ok(())
    }

    async fn next(&mut self) -> std::io::Result<Vec<SocketAddr>> {
        if !std::mem::take(&mut self.first) {
            tokio::time::sleep(self.every).await; // pace: never busy-loop
        }
        let text = tokio::fs::read_to_string(&self.path).await?;
        let mut addrs = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.parse::<SocketAddr>() {
                Ok(a) if Some(a) != self.me => addrs.push(a),
                Ok(_) => {}
                Err(_) => eprintln!("ignoring bad line in {:?}: {line:?}", self.path),
            }
        }
        Ok(addrs)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let path = std::env::temp_dir().join(format!("espial-peers-{}.txt", std::process::id()));
    std::fs::write(
        &path,
        "# cluster seeds\n127.0.0.1:27272\n127.0.0.2:27272\nnot-an-address\n",
    )?;
    let mut d = FileDiscovery::new(&path, Duration::from_millis(200));
    d.announce("127.0.0.2:27272".parse().unwrap()).await?;
    println!("batch 1: {:?}", d.next().await?);
    std::fs::write(&path, "127.0.0.1:27272\n127.0.0.3:27272\n")?;
    println!("batch 2: {:?}", d.next().await?);
    std::fs::remove_file(&path)?;
    Ok(())
}
