//! Real partitions with nftables: drop traffic between two groups of loopback addresses, or
//! one way only (a muted node still receives).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// An nftables table that drops traffic between two address groups; deleted on drop.
pub struct Partition {
    table: String,
}

fn set(ips: &[Ipv4Addr]) -> String {
    let v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    format!("{{ {} }}", v.join(", "))
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run `nft` ({e}): the partition tests need nftables \
                 (apt-get install nftables; .ci/run installs it)"
            )
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "nft failed: {}\nscript:\n{script}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl Partition {
    /// Cuts every packet between `a` and `b` (both directions) in table `inet <table>`.
    /// Panics with a clear message when `nft` is missing or refuses the rules.
    pub fn new(table: &str, a: &[Ipv4Addr], b: &[Ipv4Addr]) -> Partition {
        let (sa, sb) = (set(a), set(b));
        let script = format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
             ip saddr {sa} ip daddr {sb} drop\n    ip saddr {sb} ip daddr {sa} drop\n  }}\n}}\n"
        );
        if let Err(e) = nft(&script) {
            panic!("{e}");
        }
        Partition {
            table: table.to_string(),
        }
    }

    /// Drops every packet sent from an address in `from` to an address in `to`, one way
    /// only: `to` still reaches `from`. Panics like [`Partition::new`].
    pub fn one_way(table: &str, from: &[Ipv4Addr], to: &[Ipv4Addr]) -> Partition {
        let (sf, st) = (set(from), set(to));
        let script = format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
             ip saddr {sf} ip daddr {st} drop\n  }}\n}}\n"
        );
        if let Err(e) = nft(&script) {
            panic!("{e}");
        }
        Partition {
            table: table.to_string(),
        }
    }

    /// Mutes `victim` towards `others`: everything it sends to them is dropped, it still
    /// receives everything they send (a node that can receive but not send).
    pub fn mute(table: &str, victim: Ipv4Addr, others: &[Ipv4Addr]) -> Partition {
        Partition::one_way(table, &[victim], others)
    }

    /// Removes the rules (heals the partition).
    pub fn heal(self) {
        drop(self)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(e) = nft(&format!("delete table inet {}\n", self.table)) {
            eprintln!("could not remove the partition: {e}");
        }
    }
}
