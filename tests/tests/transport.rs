//! The UDP transport's non-blocking receive, which the driver uses to feed a burst of queued
//! datagrams to the node before draining it once.

use espial::Transport;
use espial_net::UdpTransport;
use espial_tests::{addr, require_netns};
use std::time::Duration;

const NET: u8 = 30;

#[tokio::test]
async fn try_recv_from_takes_what_is_queued_and_never_waits() {
    require_netns!();
    let rx = UdpTransport::bind(addr(NET, 1, 0)).expect("bind");
    let tx = UdpTransport::bind(addr(NET, 2, 0)).expect("bind");
    let to = rx.local_addr().unwrap();
    let mut buf = [0u8; 64];
    assert!(
        rx.try_recv_from(&mut buf).unwrap().is_none(),
        "nothing queued"
    );
    for i in 0..3u8 {
        tx.send_to(&[i; 5], to).await.unwrap();
    }
    // The first by the awaiting path (bounded), the rest already queued.
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), rx.recv_from(&mut buf))
        .await
        .expect("a datagram within 5 s")
        .unwrap();
    assert_eq!((&buf[..n], from), (&[0u8; 5][..], tx.local_addr().unwrap()));
    for i in 1..3u8 {
        let (n, from) = rx
            .try_recv_from(&mut buf)
            .unwrap()
            .expect("queued datagram");
        assert_eq!((&buf[..n], from), (&[i; 5][..], tx.local_addr().unwrap()));
    }
    assert!(rx.try_recv_from(&mut buf).unwrap().is_none(), "all taken");
}
