//! Adversary suite, part 2: denial of service and reflection (issue 10), against real
//! `espial agent` processes in the private namespace. Figures (join time, bytes out ÷ bytes
//! in toward a victim address, RSS) are printed; run with `--no-capture` to see them:
//! `bash scripts/netns cargo nextest run -p espial-tests --test adversary_dos --no-capture`.
//! Every flood is bounded in count and time.

use espial_core::rng::Rng;
use espial_core::session::Sessions;
use espial_core::wire::{self, Hello, Kind, SealedHeader};
use espial_core::{Config, NodeId, Stats};
use espial_net::multicast::encode_beacon;
use espial_tests::adversary::AgentCluster;
use espial_tests::attacker::{fresh_cipher, random_id, random_source, rss_kib, Spoofer, Victim};
use espial_tests::{addr, require_netns};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_espial-cli");
const PSK: &[u8] = b"adversary suite cluster key 0123";
/// Join time a legitimate newcomer must meet during and after a half-open flood.
const JOIN_LIMIT: Duration = Duration::from_secs(1);

/// A genuine first handshake datagram (Hello) from a fresh identity toward `to`, made by
/// the core's own session layer (with the PSK's MAC when given).
fn genuine_hello(to: SocketAddr, psk: Option<&[u8]>) -> Vec<u8> {
    let (cipher, id) = fresh_cipher(psk);
    let mut s = Sessions::new(id, Box::new(cipher), &Config::lan());
    let mut out = Vec::new();
    s.send(
        Instant::now(),
        None,
        to,
        vec![],
        &mut Rng::new(id.0 as u64),
        &mut Stats::default(),
        &mut out,
    );
    out.into_iter().next().expect("a Hello").1
}

/// `hello` with another sender id and attempt, re-encoded (padded) with the core's codec
/// like a genuine one (no PSK).
fn with_random_id(hello: &[u8], rng: &mut Rng) -> Vec<u8> {
    let (_, body) = wire::split_header(hello, 65536).expect("own Hello");
    let mut h: Hello = wire::decode_body(body).expect("own Hello body");
    h.from = random_id(rng);
    h.attempt = rng.next_u64();
    wire::encode_hello(&h, 0)
}

/// A fake sealed record naming `sender` (an epoch the receiver does not have): 32 bytes of
/// header plus `extra` bytes of garbage.
fn fake_sealed(sender: NodeId, rng: &mut Rng, extra: usize) -> Vec<u8> {
    let mut d = Vec::new();
    SealedHeader {
        sender,
        epoch: rng.next_u64() as u32,
        counter: rng.next_u64() >> 8,
    }
    .write(&mut d);
    d.extend((0..extra).map(|_| rng.next_u64() as u8));
    d
}

/// Join time of a newcomer started now: from its `listening` line to `node_accepted`
/// (`None`: not accepted within 10 s).
async fn join_time(
    c: &mut AgentCluster,
    name: &str,
    host: u8,
    seed: SocketAddr,
) -> Option<Duration> {
    let i = c.spawn_newcomer(name, host, &[seed]);
    c.a.wait("newcomer listening", Duration::from_secs(10), |a| {
        a.agents[i].events("listening").count() > 0
    })
    .await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        c.a.pump();
        if c.a.agents[i].events("node_accepted").count() > 0 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// 100,000 Hellos from random ids and random source addresses (127.0.60-63.x), paced at
/// about 10,000/s; a newcomer joins during the flood and another after it. Both must be
/// accepted within 1 s; the flooded agent's RSS is reported and must stay bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_flood_does_not_lock_newcomers_out() {
    require_netns!();
    let (net, port) = (44, 27540);
    let mut c = AgentCluster::start(BIN, net, port, 1, None, |_| vec![]).await;
    let target = c.addrs[0];
    let pid = c.a.pid(0);
    let rss_before = rss_kib(pid);
    let template = genuine_hello(target, None);
    let flood = std::thread::spawn(move || {
        let mut rng = Rng::new(44);
        let mut sp = Spoofer::default();
        let start = Instant::now();
        for k in 0..100_000u32 {
            if start.elapsed() > Duration::from_secs(40) {
                break;
            }
            let h = with_random_id(&template, &mut rng);
            sp.send_from(random_source(&mut rng, &[60, 61, 62, 63]), target, &h);
            if k % 100 == 99 {
                // ~10,000 per second
                let due = start + Duration::from_millis(u64::from(k + 1) / 10);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        }
        (sp.packets_out, sp.bytes_out, start.elapsed())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = join_time(&mut c, "during", 10, target).await;
    let rss_during = rss_kib(pid);
    let (sent, bytes, took) = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    let after = join_time(&mut c, "after", 11, target).await;
    let rss_after = rss_kib(pid);
    println!(
        "half-open flood: {sent} Hellos ({bytes} B) in {} ms; newcomer join time during the \
         flood {during:?}, after it {after:?} (None = not accepted within 10 s); flooded agent \
         RSS {rss_before} -> {rss_during} -> {rss_after} KiB",
        took.as_millis(),
    );
    assert!(sent >= 100_000, "the flood was cut short ({sent} sent)");
    assert!(
        during.is_some_and(|d| d <= JOIN_LIMIT),
        "join during the flood: {during:?}"
    );
    assert!(
        after.is_some_and(|d| d <= JOIN_LIMIT),
        "join after the flood: {after:?}"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew by {} KiB",
        rss_after - rss_before
    );
    c.a.quit_all().await;
}

/// Datagrams spoofed from a victim address toward member B: fake sealed records naming
/// member A ("heal" bait), Hellos from random ids, one Hello repeated, and a genuine Hello
/// captured from member A replayed. Bytes that reach the victim ÷ bytes sent as it must be
/// ≤ 1.0 for each; the cluster stays intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_and_hello_reflection_at_most_1x() {
    require_netns!();
    let (net, port) = (45, 27550);
    // a1 also lists a capture address as a peer, so it sends its genuine Hellos there.
    let capture_addr = addr(net, 30, port);
    let capture = UdpSocket::bind(capture_addr).expect("bind capture address");
    let mut c = AgentCluster::start(BIN, net, port, 2, None, |h| {
        if h == 1 {
            vec!["--peers".into(), capture_addr.to_string()]
        } else {
            vec![]
        }
    })
    .await;
    let master = c.master().expect("a master");
    let (a, b_addr) = (c.ids[0], c.addrs[1]);
    let (heal, hello, dup, replayed) = tokio::task::spawn_blocking(move || {
        let mut rng = Rng::new(45);
        // One 36-byte record per victim address (the worst case per address).
        let mut v1s: Vec<Victim> = (60..70).map(|h| Victim::new(addr(net, h, port))).collect();
        for v in v1s.iter_mut() {
            let d = fake_sealed(a, &mut rng, 4);
            v.send_as_victim(b_addr, &d);
        }
        for v in v1s.iter_mut() {
            v.listen(Duration::from_millis(300));
        }
        std::thread::sleep(Duration::from_secs(2));
        for v in v1s.iter_mut() {
            v.listen(Duration::from_millis(100));
        }
        let v1 = v1s
            .into_iter()
            .max_by(|x, y| x.ratio().total_cmp(&y.ratio()))
            .expect("ten victims");
        let mut v2 = Victim::new(addr(net, 51, port));
        let template = genuine_hello(b_addr, None);
        for _ in 0..100 {
            let h = with_random_id(&template, &mut rng);
            v2.send_as_victim(b_addr, &h);
        }
        v2.listen(Duration::from_secs(3));
        let mut v3 = Victim::new(addr(net, 52, port));
        let one = genuine_hello(b_addr, None);
        for _ in 0..100 {
            v3.send_as_victim(b_addr, &one);
        }
        v3.listen(Duration::from_secs(3));
        // A genuine Hello captured from member a1, replayed 100 times from a victim address.
        capture
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = vec![0u8; 2048];
        let mut captured = None;
        let end = Instant::now() + Duration::from_secs(10);
        while captured.is_none() && Instant::now() < end {
            if let Ok((n, _)) = capture.recv_from(&mut buf) {
                if wire::split_header(&buf[..n], 2048).is_ok_and(|(k, _)| k == Kind::Hello) {
                    captured = Some(buf[..n].to_vec());
                }
            }
        }
        let mut v4 = Victim::new(addr(net, 53, port));
        if let Some(h) = &captured {
            for _ in 0..100 {
                v4.send_as_victim(b_addr, h);
            }
            v4.listen(Duration::from_secs(3));
        }
        let f = |v: &Victim| (v.bytes_sent, v.bytes_in, v.ratio());
        (f(&v1), f(&v2), f(&v3), f(&v4))
    })
    .await
    .unwrap();
    for (what, (sent, got, ratio)) in [
        (
            "heal bait (one fake sealed record naming A per victim, worst victim)",
            heal,
        ),
        ("Hellos from random ids", hello),
        ("one Hello repeated 100 times", dup),
        ("a captured Hello of member a1 replayed 100 times", replayed),
    ] {
        println!("reflection, {what}: {sent} B in, {got} B out to the victim, ratio {ratio:.2}");
    }
    c.assert_intact(&[0, 1], Some(&master), Duration::from_secs(5))
        .await;
    assert!(replayed.0 > 0, "no Hello of a1 was captured to replay");
    for (what, (_, _, ratio)) in [
        ("heal", heal),
        ("hello", hello),
        ("duplicate hello", dup),
        ("replayed hello", replayed),
    ] {
        assert!(ratio <= 1.0, "{what} reflection amplifies {ratio:.2}x");
    }
    c.a.quit_all().await;
}

/// With a cluster PSK, packets that lack the key get no answer at all: fake sealed records
/// and Hellos without the key's MAC, from a victim address, bring back 0 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_psk_nothing_answers_a_packet_without_the_key() {
    require_netns!();
    let (net, port) = (46, 27560);
    let mut c = AgentCluster::start(BIN, net, port, 2, Some(PSK), |_| vec![]).await;
    let master = c.master().expect("a master");
    let (a, b_addr) = (c.ids[0], c.addrs[1]);
    let (sent, got) = tokio::task::spawn_blocking(move || {
        let mut rng = Rng::new(46);
        let mut v = Victim::new(addr(net, 50, port));
        for _ in 0..100 {
            let d = fake_sealed(a, &mut rng, 4);
            v.send_as_victim(b_addr, &d);
            let h = genuine_hello(b_addr, None);
            v.send_as_victim(b_addr, &h);
        }
        v.listen(Duration::from_secs(3));
        (v.bytes_sent, v.bytes_in)
    })
    .await
    .unwrap();
    println!("PSK cluster, packets without the key: {sent} B in, {got} B back to the victim");
    c.assert_intact(&[0, 1], Some(&master), Duration::from_secs(5))
        .await;
    assert_eq!(got, 0, "a PSK node answered packets lacking the key");
    c.a.quit_all().await;
}

fn multicast_args(net: u8, port: u16) -> Vec<String> {
    vec![
        "--multicast".into(),
        format!("239.255.{net}.1:{}", port + 9),
        "--multicast-iface".into(),
        "127.0.0.1".into(),
        "--cluster".into(),
        "adv".into(),
    ]
}

/// Waits (at most 5 s) for one genuine beacon on the group and returns it.
fn capture_beacon(g: SocketAddr) -> Option<Vec<u8>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let std::net::IpAddr::V4(group) = g.ip() else {
        return None;
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).ok()?;
    s.set_reuse_address(true).ok()?;
    s.set_reuse_port(true).ok()?;
    s.bind(&g.into()).ok()?;
    s.join_multicast_v4(&group, &std::net::Ipv4Addr::LOCALHOST)
        .ok()?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let end = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            if wire::split_header(&buf[..n], 2048).is_ok_and(|(k, _)| k == Kind::Beacon) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

fn group(net: u8, port: u16) -> SocketAddr {
    format!("239.255.{net}.1:{}", port + 9).parse().unwrap()
}

/// Beacon reflection toward victims 127.0.<net>.60-69, one beacon each: with `own_source`
/// the beacon is sent from the victim's own address naming itself (the form a beacon may
/// take), else from the attacker's address naming the victim. Then 100 replays of a captured
/// genuine beacon from another address. Returns the worst victim's (in, out, ratio) and the
/// replay's.
type Figure = (u64, u64, f64);
async fn beacon_reflection(net: u8, port: u16, own_source: bool) -> (Figure, Figure) {
    let mut c = AgentCluster::start(BIN, net, port, 3, None, |_| multicast_args(net, port)).await;
    let master = c.master().expect("a master");
    let g = group(net, port);
    let (worst, replay) = tokio::task::spawn_blocking(move || {
        let mut rng = Rng::new(u64::from(net));
        let attacker = UdpSocket::bind(addr(net, 9, port)).unwrap();
        let mut vs: Vec<Victim> = (60..70).map(|h| Victim::new(addr(net, h, port))).collect();
        for v in vs.iter_mut() {
            let b = encode_beacon("adv", random_id(&mut rng), v.addr(), None);
            if own_source {
                v.send_as_victim(g, &b);
            } else if attacker.send_to(&b, g).is_ok() {
                v.bytes_sent += b.len() as u64;
            }
        }
        std::thread::sleep(Duration::from_secs(4));
        for v in vs.iter_mut() {
            v.listen(Duration::from_millis(100));
        }
        let worst = vs
            .into_iter()
            .max_by(|x, y| x.ratio().total_cmp(&y.ratio()))
            .map(|v| (v.bytes_sent, v.bytes_in, v.ratio()))
            .expect("ten victims");
        // Capture a genuine beacon, then replay it from the attacker's address.
        let mut replay = Victim::new(addr(net, 51, port));
        if let Some(b) = capture_beacon(g) {
            for _ in 0..100 {
                replay.send_as_victim(g, &b);
            }
            replay.listen(Duration::from_secs(3));
        }
        (worst, (replay.bytes_sent, replay.bytes_in, replay.ratio()))
    })
    .await
    .unwrap();
    c.assert_intact(&[0, 1, 2], Some(&master), Duration::from_secs(5))
        .await;
    c.a.quit_all().await;
    (worst, replay)
}

/// Forged beacons naming a victim address (from the attacker's own address), then replays
/// of a captured genuine beacon: bytes to the victim (and to the replayer) ÷ beacon bytes
/// sent must be ≤ 1.0; the cluster stays intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_naming_another_address_and_replays_reflect_at_most_1x() {
    require_netns!();
    let (forged, replay) = beacon_reflection(47, 27570, false).await;
    println!(
        "beacon naming the victim from another address (worst of 10 victims): {} B in, {} B \
         out, ratio {:.2}; replayed genuine beacon: {} B in, {} B out, ratio {:.2}",
        forged.0, forged.1, forged.2, replay.0, replay.1, replay.2
    );
    assert!(replay.0 > 0, "no genuine beacon was captured to replay");
    assert!(
        forged.2 <= 1.0,
        "beacon reflection amplifies {:.2}x",
        forged.2
    );
    assert!(replay.2 <= 1.0, "beacon replay amplifies {:.2}x", replay.2);
}

/// A beacon sent from the victim's own address naming itself (spoofed source: the form a
/// beacon is allowed to take): the agents' handshakes toward it must not exceed the beacon's
/// bytes (amplification ≤ 1.0 toward an unverified address). Before the fix one 35 B beacon
/// made 3 agents send 21 padded Hellos (6,720 B, 192×); now beacons are padded to 320 B and
/// one member sends one Hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_from_the_victims_own_address_reflects_at_most_1x() {
    require_netns!();
    let (own, _) = beacon_reflection(51, 27610, true).await;
    println!(
        "beacon from the victim's address naming itself (worst of 10 victims): {} B in, {} B \
         out, ratio {:.2}",
        own.0, own.1, own.2
    );
    assert!(
        own.2 <= 1.0,
        "a self-named beacon from a spoofed source amplifies {:.2}x",
        own.2
    );
}

/// 200,000 forged beacons (random ids, each naming a random port on its own random source
/// address 127.0.64-67.x) to the group, bounded to ~40 s: every agent's RSS stays bounded,
/// and a newcomer is still accepted promptly afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_flood_memory_is_bounded() {
    require_netns!();
    let (net, port) = (48, 27580);
    let mut c = AgentCluster::start(BIN, net, port, 2, None, |_| multicast_args(net, port)).await;
    let master = c.master().expect("a master");
    let pids = [c.a.pid(0), c.a.pid(1)];
    let before: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let g = group(net, port);
    let (sent, took) = tokio::task::spawn_blocking(move || {
        let mut rng = Rng::new(48);
        let start = Instant::now();
        let mut sent = 0u64;
        let socks: Vec<UdpSocket> = (0..64)
            .filter_map(|_| {
                let a = random_source(&mut rng, &[64, 65, 66, 67]);
                UdpSocket::bind(a).ok()
            })
            .collect();
        for k in 0..200_000u32 {
            if start.elapsed() > Duration::from_secs(40) {
                break;
            }
            let s = &socks[k as usize % socks.len()];
            let mut named = s.local_addr().unwrap();
            named.set_port(1_024 + (rng.next_u64() % 60_000) as u16);
            let b = encode_beacon("adv", random_id(&mut rng), named, None);
            if s.send_to(&b, g).is_ok() {
                sent += 1;
            }
            if k % 200 == 199 {
                // ~20,000 per second
                let due = start + Duration::from_millis(u64::from(k + 1) / 20);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        }
        (sent, start.elapsed())
    })
    .await
    .unwrap();
    let after: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    c.assert_intact(&[0, 1], Some(&master), Duration::from_secs(5))
        .await;
    let seed = c.addrs[0];
    let joined = join_time(&mut c, "newcomer", 10, seed).await;
    println!(
        "beacon flood: {sent} forged beacons in {} ms; agent RSS before {before:?} KiB, after \
         {after:?} KiB; newcomer join time afterwards {joined:?}",
        took.as_millis()
    );
    for (b, a) in before.iter().zip(&after) {
        assert!(*a < b + 32 * 1024, "RSS grew from {b} to {a} KiB");
    }
    assert!(
        joined.is_some(),
        "no newcomer accepted after the beacon flood"
    );
    c.a.quit_all().await;
}
