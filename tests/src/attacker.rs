//! A Rust attacker speaking espial's wire format through `espial-core`'s own codec and
//! session layer (handshake via the `Cipher` trait with `espial-crypto`), for the adversary
//! suite in `tests/tests/adversary.rs`.
//!
//! Three roles, each a plain blocking UDP endpoint on a 127.0.x.y address (only inside the
//! private network namespace):
//! - [`Impersonator`]: an off-path attacker that claims someone else's node id from its own
//!   address, holding only a freshly generated key (and, optionally, the cluster PSK).
//! - [`Liar`]: an admitted member (a complete `espial_core::Node` with its own genuine key)
//!   whose test code also sends crafted messages through [`Node::adversary_send`].
//! - [`Spoofer`] and [`Victim`]: raw datagrams from any 127.0.x.y source address, and a
//!   socket that counts the bytes it receives (reflection and amplification figures).
//!
//! Every loop here is bounded in count and time.

use espial_core::rng::Rng;
use espial_core::session::Sessions;
use espial_core::wire::{self, Kind, Msg};
use espial_core::{Admission, Config, Event, Node, NodeId, NodeInfo, Output, Stats};
use espial_crypto::{AesGcmCipher, IdentityKey};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A cipher with a freshly generated identity key (and the PSK when given).
pub fn fresh_cipher(psk: Option<&[u8]>) -> (AesGcmCipher, NodeId) {
    let key = IdentityKey::generate().expect("generate an identity key");
    let id = key.node_id();
    let mut c = AesGcmCipher::new();
    if let Some(psk) = psk {
        c = c.with_psk(psk).expect("valid PSK");
    }
    (c.with_identity(key), id)
}

fn bind(addr: SocketAddr) -> UdpSocket {
    assert!(
        matches!(addr.ip(), std::net::IpAddr::V4(ip) if ip.is_loopback()),
        "the attacker binds loopback addresses only, not {addr}"
    );
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    s
}

/// Off-path impersonation: a session table whose own id is `claimed` (someone else's) while
/// its identity key is its own fresh one. Whatever it manages to seal is a forgery.
pub struct Impersonator {
    /// Its socket (its own address, not the victim's).
    pub sock: UdpSocket,
    /// Its session table (`me` = the claimed id).
    pub sessions: Sessions,
    rng: Rng,
    /// Session-layer counters.
    pub stats: Stats,
    /// Every message opened from a record sent to it (nothing is expected).
    pub opened: Vec<(NodeId, Msg)>,
    /// Bytes received (any kind).
    pub bytes_in: u64,
}

impl Impersonator {
    /// Binds `bind` and claims `claimed` with a fresh key (plus `psk` when given).
    pub fn new(bind_addr: SocketAddr, claimed: NodeId, psk: Option<&[u8]>) -> Self {
        let (cipher, _own_id) = fresh_cipher(psk);
        Impersonator {
            sock: bind(bind_addr),
            sessions: Sessions::new(claimed, Box::new(cipher), &Config::lan()),
            rng: Rng::new(claimed.0 as u64 ^ 0x5eed),
            stats: Stats::default(),
            opened: Vec::new(),
            bytes_in: 0,
        }
    }

    /// Seals `msgs` to the node at `addr` (a handshake claiming our false id starts first).
    pub fn send(&mut self, peer: Option<NodeId>, addr: SocketAddr, msgs: Vec<Msg>) {
        let mut out = Vec::new();
        self.sessions.send(
            Instant::now(),
            peer,
            addr,
            msgs,
            &mut self.rng,
            &mut self.stats,
            &mut out,
        );
        self.transmit(out);
    }

    fn transmit(&mut self, out: Vec<(SocketAddr, Vec<u8>)>) {
        for (to, data) in out {
            let _ = self.sock.send_to(&data, to);
        }
    }

    /// Receives and handles datagrams (handshake answers, records) for `dur`.
    pub fn pump(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            let now = Instant::now();
            let mut out = Vec::new();
            self.sessions.handle_timeout(now, &mut self.stats, &mut out);
            self.transmit(out);
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            self.bytes_in += n as u64;
            let Ok((kind, body)) = wire::split_header(&buf[..n], 65536) else {
                continue;
            };
            if kind == Kind::Beacon {
                continue;
            }
            let mut out = Vec::new();
            let r = self.sessions.handle(
                Instant::now(),
                from,
                kind,
                body,
                &mut self.rng,
                &mut self.stats,
                &mut out,
            );
            self.transmit(out);
            if let Ok(o) = r {
                for m in o.msgs {
                    self.opened.push((o.from, m));
                }
            }
        }
    }

    /// Whether the handshake with `peer` completed (the attack got a session).
    pub fn has_session(&self, peer: NodeId) -> bool {
        self.sessions.has_session(peer)
    }
}

/// An admitted member that lies: a complete node (genuine key, admitted normally) driven
/// on a blocking socket, whose crafted messages go out through `Node::adversary_send`.
pub struct Liar {
    /// Its socket.
    pub sock: UdpSocket,
    /// The node.
    pub node: Node,
    /// Events it emitted.
    pub events: Vec<Event>,
}

impl Liar {
    /// A new member at `bind_addr` that joins through `seeds` (call [`Liar::pump`] to run).
    pub fn new(
        bind_addr: SocketAddr,
        name: &str,
        seeds: &[SocketAddr],
        psk: Option<&[u8]>,
    ) -> Self {
        let (cipher, id) = fresh_cipher(psk);
        let info = NodeInfo::new(id, name, bind_addr);
        let now = Instant::now();
        let mut node =
            Node::new(Config::lan(), info, Box::new(cipher), id.0 as u64, now).expect("liar node");
        node.handle_discovered(now, seeds);
        let mut l = Liar {
            sock: bind(bind_addr),
            node,
            events: Vec::new(),
        };
        l.drain();
        l
    }

    /// Its node id.
    pub fn id(&self) -> NodeId {
        self.node.id()
    }

    fn drain(&mut self) {
        while let Some(o) = self.node.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let _ = self.sock.send_to(&t.data, t.to);
                }
                Output::Event(e) => self.events.push(e),
                Output::Admission(req) => {
                    self.node
                        .handle_admission(Instant::now(), req.id, Admission::Accept);
                }
            }
        }
    }

    /// Runs the node (datagrams and timers) for `dur`.
    pub fn pump(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                self.node.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            let now = Instant::now();
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            self.drain();
        }
    }

    /// Runs until `cond` holds or `limit` passes; returns whether it held.
    pub fn pump_until(&mut self, limit: Duration, mut cond: impl FnMut(&Liar) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if cond(self) {
                return true;
            }
            self.pump(Duration::from_millis(20));
        }
        cond(self)
    }

    /// Seals `msgs` as they are to member `to` at `addr` (the lie), then flushes.
    pub fn lie(&mut self, to: NodeId, addr: SocketAddr, msgs: Vec<Msg>) {
        self.node.adversary_send(Instant::now(), to, addr, msgs);
        self.drain();
    }
}

/// Raw datagrams from arbitrary 127.0.x.y source addresses (on `lo` a bound source address
/// is as good as a spoofed one: the receiver answers it).
#[derive(Default)]
pub struct Spoofer {
    /// Bytes sent so far.
    pub bytes_out: u64,
    /// Datagrams sent so far.
    pub packets_out: u64,
}

impl Spoofer {
    /// Sends `data` to `to` from a fresh socket on `src` (port 0 = any).
    pub fn send_from(&mut self, src: SocketAddr, to: SocketAddr, data: &[u8]) {
        let s = match UdpSocket::bind(src) {
            Ok(s) => s,
            Err(_) => return,
        };
        if s.send_to(data, to).is_ok() {
            self.bytes_out += data.len() as u64;
            self.packets_out += 1;
        }
    }
}

/// A socket that only counts what it receives: the victim of a reflection attack.
pub struct Victim {
    /// Its socket (the attacker also sends from it: "spoofed from the victim").
    pub sock: UdpSocket,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams received.
    pub packets_in: u64,
    /// Bytes the attacker sent from this address (or naming it).
    pub bytes_sent: u64,
}

impl Victim {
    /// Binds the victim address.
    pub fn new(addr: SocketAddr) -> Self {
        let sock = bind(addr);
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        Victim {
            sock,
            bytes_in: 0,
            packets_in: 0,
            bytes_sent: 0,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("bound")
    }

    /// Sends `data` to `to` with the victim's address as source.
    pub fn send_as_victim(&mut self, to: SocketAddr, data: &[u8]) {
        if self.sock.send_to(data, to).is_ok() {
            self.bytes_sent += data.len() as u64;
        }
    }

    /// Counts what arrives for `dur`; returns the datagrams themselves.
    pub fn listen(&mut self, dur: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + dur;
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                self.bytes_in += n as u64;
                self.packets_in += 1;
                if got.len() < 1024 {
                    got.push(buf[..n].to_vec());
                }
            }
        }
        got
    }

    /// Bytes received ÷ bytes sent from (or naming) this address.
    pub fn ratio(&self) -> f64 {
        self.bytes_in as f64 / (self.bytes_sent.max(1)) as f64
    }
}

/// A random address `127.0.<net>.<2..=254>` drawn from `rng` (for spoofed sources).
pub fn random_source(rng: &mut Rng, nets: &[u8]) -> SocketAddr {
    let net = nets[rng.below(nets.len())];
    let host = 2 + rng.below(253) as u8;
    SocketAddr::from((Ipv4Addr::new(127, 0, net, host), 0))
}

/// A random node id.
pub fn random_id(rng: &mut Rng) -> NodeId {
    NodeId(((rng.next_u64() as u128) << 64) | rng.next_u64() as u128)
}

/// Resident set size of process `pid` in KiB (from `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
