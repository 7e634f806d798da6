//! The real cipher inside real cores: nodes with `AesGcmCipher` join and gossip member data
//! that never appears in clear on the wire; a wrong or missing PSK, or a stolen identity public
//! key, never completes a join. In-memory delivery with virtual time (no sockets).

use espial_core::cipher::{Cipher, CryptoError, KeyExchange};
use espial_core::{Admission, Config, Event, Node, NodeId, NodeInfo, Output, PlaintextTestCipher};
use espial_crypto::{AesGcmCipher, IdentityKey};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PSK: &[u8] = b"node cluster test psk, 16+";

struct Cluster {
    addrs: Vec<SocketAddr>,
    nodes: Vec<Node>,
    now: Instant,
    /// Every datagram sent.
    wire: Vec<Vec<u8>>,
    events: Vec<Vec<Event>>,
    /// Verified identity keys seen by each node's admission filter.
    admitted_keys: Vec<Vec<Option<Vec<u8>>>>,
    /// Keys the admission filter accepts (`None` = accept all).
    allow: Option<Vec<Vec<u8>>>,
}

impl Cluster {
    fn new(ciphers: Vec<Box<dyn Cipher>>, filter: bool) -> Self {
        let now = Instant::now();
        let mut c = Cluster {
            addrs: Vec::new(),
            nodes: Vec::new(),
            now,
            wire: Vec::new(),
            events: Vec::new(),
            admitted_keys: Vec::new(),
            allow: None,
        };
        for (i, cipher) in ciphers.into_iter().enumerate() {
            let addr: SocketAddr = ([127, 0, 0, i as u8 + 1], 27272).into();
            let mut info = NodeInfo::new(cipher.node_id(), format!("n{i}"), addr);
            info.metadata
                .insert("secret", format!("META-SECRET-{i}-value"));
            let mut node = Node::new(Config::lan(), info, cipher, 11 + i as u64, now).unwrap();
            node.set_admission_filter(filter);
            c.addrs.push(addr);
            c.nodes.push(node);
            c.events.push(Vec::new());
            c.admitted_keys.push(Vec::new());
        }
        // Everyone is told node 0's address.
        for i in 1..c.nodes.len() {
            let seed = c.addrs[0];
            c.nodes[i].handle_discovered(now, &[seed]);
        }
        c
    }

    /// Delivers every datagram immediately and advances virtual time to `now + d`.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _guard in 0..2_000_000 {
            let mut queue = Vec::new();
            for i in 0..self.nodes.len() {
                while let Some(o) = self.nodes[i].poll_output() {
                    match o {
                        Output::Transmit(t) => queue.push((self.addrs[i], t.to, t.data)),
                        Output::Event(e) => self.events[i].push(e),
                        Output::Admission(req) => {
                            let ok = match &self.allow {
                                None => true,
                                Some(list) => {
                                    req.verified_key.as_ref().is_some_and(|k| list.contains(k))
                                }
                            };
                            self.admitted_keys[i].push(req.verified_key.clone());
                            let decision = if ok {
                                Admission::Accept
                            } else {
                                Admission::Reject("not on the allow-list".into())
                            };
                            self.nodes[i].handle_admission(self.now, req.id, decision);
                        }
                    }
                }
            }
            if !queue.is_empty() {
                for (from, to, data) in queue {
                    if let Some(j) = self.addrs.iter().position(|a| *a == to) {
                        self.nodes[j].handle_datagram(self.now, from, &data);
                    }
                    self.wire.push(data);
                }
                continue;
            }
            let next = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in &mut self.nodes {
                        if n.poll_timeout().is_some_and(|t| t <= now) {
                            n.handle_timeout(now);
                        }
                    }
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("cluster did not settle (event storm?)");
    }

    fn sizes(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.members().len()).collect()
    }

    fn wire_contains(&self, needle: &[u8]) -> bool {
        self.wire
            .iter()
            .any(|d| d.windows(needle.len()).any(|w| w == needle))
    }
}

fn aes_psk() -> Box<dyn Cipher> {
    Box::new(AesGcmCipher::new().with_psk(PSK).unwrap())
}

#[test]
fn aes_nodes_join_and_member_data_never_appears_in_clear() {
    for aes256 in [false, true] {
        let mk = || -> Box<dyn Cipher> {
            let c = AesGcmCipher::new().with_psk(PSK).unwrap();
            Box::new(if aes256 { c.aes256() } else { c })
        };
        let mut c = Cluster::new(vec![mk(), mk(), mk()], false);
        c.run_for(Duration::from_secs(10));
        assert_eq!(c.sizes(), vec![3, 3, 3], "everyone sees the cluster");
        // Node 2 learned node 1's metadata (through node 0 or directly), all encrypted.
        let id1 = c.nodes[1].id();
        let m = c.nodes[2].member(id1).expect("member known");
        assert_eq!(m.metadata.get("secret"), Some("META-SECRET-1-value"));
        assert!(
            !c.wire_contains(b"META-SECRET"),
            "metadata visible on the wire"
        );
        assert!(c.nodes[0].stats().handshakes_completed >= 1);
        assert_eq!(c.nodes[0].stats().decrypt_failures, 0);
    }
    // Control: with the transparent test cipher the same check does see the metadata.
    let mut c = Cluster::new(
        vec![
            Box::new(PlaintextTestCipher::for_node(NodeId(0x100))),
            Box::new(PlaintextTestCipher::for_node(NodeId(0x101))),
        ],
        false,
    );
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.sizes(), vec![2, 2]);
    assert!(c.wire_contains(b"META-SECRET"));
}

#[test]
fn seeded_aes_nodes_join() {
    let mut c = Cluster::new(
        vec![
            Box::new(AesGcmCipher::seeded(1, false)),
            Box::new(AesGcmCipher::seeded(2, false)),
        ],
        false,
    );
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.sizes(), vec![2, 2]);
}

#[test]
fn wrong_or_missing_psk_never_joins() {
    let cases: Vec<(&str, Box<dyn Cipher>)> = vec![
        (
            "other psk",
            Box::new(
                AesGcmCipher::new()
                    .with_psk(b"some other cluster key")
                    .unwrap(),
            ),
        ),
        ("no psk", Box::new(AesGcmCipher::new())),
        (
            "aes256 vs aes128",
            Box::new(AesGcmCipher::new().with_psk(PSK).unwrap().aes256()),
        ),
    ];
    for (name, intruder) in cases {
        let mut c = Cluster::new(vec![aes_psk(), intruder], false);
        c.run_for(Duration::from_secs(20));
        assert_eq!(c.sizes(), vec![1, 1], "{name}: must not join");
        let failures: u64 = c
            .nodes
            .iter()
            .map(|n| {
                let s = n.stats();
                s.handshake_failures + s.decrypt_failures
            })
            .sum();
        assert!(failures > 0, "{name}: failures are counted");
        assert!(
            !c.events[1]
                .iter()
                .any(|e| matches!(e, Event::Accepted { .. })),
            "{name}"
        );
    }
}

#[test]
fn identity_keys_reach_the_admission_filter_and_gate_joins() {
    let (ka, kb, kc) = (
        IdentityKey::generate().unwrap(),
        IdentityKey::generate().unwrap(),
        IdentityKey::generate().unwrap(),
    );
    let with = |k: &IdentityKey| -> Box<dyn Cipher> {
        Box::new(AesGcmCipher::new().with_identity(k.clone()))
    };
    // Allowed: node 1's verified key reaches node 0's filter (every node applies its own
    // filter to each member it starts a session with, so node 0's key is listed too).
    let mut c = Cluster::new(vec![with(&ka), with(&kb)], true);
    c.allow = Some(vec![ka.public_key(), kb.public_key()]);
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.sizes(), vec![2, 2]);
    assert_eq!(c.admitted_keys[0], vec![Some(kb.public_key())]);

    // Not on the allow-list: rejected.
    let mut c = Cluster::new(vec![with(&ka), with(&kc)], true);
    c.allow = Some(vec![ka.public_key(), kb.public_key()]);
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.sizes(), vec![1, 1]);
    assert!(c.events[1]
        .iter()
        .any(|e| matches!(e, Event::Rejected { .. })));
}

/// Presents a victim's public key but signs with its own private key.
struct Impostor {
    inner: AesGcmCipher,
    victim_public: Vec<u8>,
}

impl Cipher for Impostor {
    fn suite(&self) -> &'static str {
        self.inner.suite()
    }
    fn start_exchange(&mut self) -> Box<dyn KeyExchange> {
        self.inner.start_exchange()
    }
    fn identity_public_key(&self) -> Vec<u8> {
        self.victim_public.clone()
    }
    fn node_id_for(&self, pk: &[u8]) -> Option<espial_core::NodeId> {
        self.inner.node_id_for(pk)
    }
    fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
        self.inner.sign(domain, msg)
    }
    fn verify(&self, pk: &[u8], d: &[u8], m: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.inner.verify(pk, d, m, sig)
    }
}

#[test]
fn stolen_public_key_without_private_key_cannot_join() {
    let (ka, victim, own) = (
        IdentityKey::generate().unwrap(),
        IdentityKey::generate().unwrap(),
        IdentityKey::generate().unwrap(),
    );
    let impostor = Impostor {
        inner: AesGcmCipher::new().with_identity(own),
        victim_public: victim.public_key(),
    };
    let mut c = Cluster::new(
        vec![
            Box::new(AesGcmCipher::new().with_identity(ka)),
            Box::new(impostor),
        ],
        true,
    );
    c.allow = Some(vec![victim.public_key()]);
    c.run_for(Duration::from_secs(20));
    assert_eq!(c.sizes(), vec![1, 1], "impostor must not join");
    assert!(
        !c.admitted_keys[0].contains(&Some(victim.public_key())),
        "the victim's key was never verified"
    );
}
