//! Every type reachable from the facade's public API is named through `espial::` (this
//! crate's tests have no dependency on espial-core, espial-net or espial-crypto), and the
//! non-exhaustive ones are used the way another crate must use them. Compiling is most of
//! the test; no socket is opened.

use espial::{
    Admission, Builder, Bytes, Claim, Config, ConfigError, ConnectionRequest, CoreStats,
    CryptoConfigError, CustomEvent, Discovery, Error, Espial, Event, EventNameError, EventStream,
    IdentityKey, IntoAdmission, Metadata, MetadataError, MetadataTooLarge, MulticastConfig,
    MulticastInterface, NodeId, NodeInfo, ParseNodeIdError, PendingRequest, PromoteError,
    RemovalReason, RequestId, RequestReplies, Result, SendError, SendId, SendOutcome, Snapshot,
    Stats, SubscribeError, Transport,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The types of every public field and method result of the handle, named through
/// `espial::` (never called: compiling it is the check).
#[allow(dead_code, clippy::too_many_arguments)]
async fn signatures(e: Espial, ev: CustomEvent) -> Result<()> {
    let _: Builder = Espial::builder();
    let _: EventStream = e.events();
    let _: () = e.join("jobs").await?;
    let _: () = e.leave("jobs").await?;
    let _: SendId = e.send("jobs", "x").await?;
    let _: Vec<SendId> = e.send_batch("jobs", ["x"]).await?;
    let _: SendOutcome = e.send_confirmed("jobs", Bytes::from_static(b"x")).await?;
    let _: RequestReplies = e.request("jobs", "x", Duration::from_secs(1)).await?;
    let mut p: PendingRequest = e.start_request("jobs", "x", Duration::from_secs(1)).await?;
    let _: RequestId = p.id();
    let _: Option<(NodeId, Bytes)> = p.next_reply().await;
    let r: RequestReplies = p.replies().await?;
    let _: (&Vec<(NodeId, Bytes)>, &Vec<NodeId>) = (&r.replies, &r.missing);
    let _: () = e.reply(&ev, "y").await?;
    let _: () = e.reply_to(ev.from, RequestId(1), "y").await?;
    let _: Vec<NodeInfo> = e.nodes();
    let _: Option<NodeInfo> = e.master();
    let _: &Config = e.config();
    let s: Stats = e.stats();
    let _: &CoreStats = &s.core;
    let snap: Snapshot = e.snapshot();
    let _: Option<Claim> = snap.claim;
    let _: &Metadata = &snap.me.metadata;
    let _: IdentityKey = IdentityKey::generate()?; // CryptoConfigError converts into Error
    let _: std::result::Result<IdentityKey, CryptoConfigError> = IdentityKey::generate();
    e.shutdown().await
}

#[allow(dead_code)]
fn errors(e: Error) -> Option<String> {
    // Every error type inside `Error` is nameable.
    match e {
        Error::Send(SendError::Name(n)) => Some(name_error(n)),
        Error::Send(SendError::TooLarge { size, limit }) => Some(format!("{size} > {limit}")),
        Error::Send(_) => None,
        Error::Subscribe(SubscribeError::Name(n)) => Some(name_error(n)),
        Error::Subscribe(_) => None,
        Error::Promote(PromoteError::NoQuorum { live, quorum }) => Some(format!("{live}/{quorum}")),
        Error::Promote(_) => None,
        Error::Metadata(MetadataError::TooLarge(m)) => Some(too_large(&m)),
        Error::Metadata(_) => None,
        Error::EventName(n) => Some(name_error(n)),
        _ => None,
    }
}

fn name_error(e: EventNameError) -> String {
    match e {
        EventNameError::Reserved(n) => n,
        _ => e.to_string(),
    }
}

fn too_large(m: &MetadataTooLarge) -> String {
    format!("{} > {}", m.size, m.limit)
}

#[allow(dead_code)]
fn traits(_: &dyn Discovery, _: &dyn Transport, _: &dyn Fn(ConnectionRequest) -> bool) {}

#[test]
fn non_exhaustive_types_are_built_and_matched_from_another_crate() {
    let ev = CustomEvent::new("jobs", NodeId(7), "payload");
    assert_eq!(
        (ev.name.as_str(), ev.from, ev.request),
        ("jobs", NodeId(7), None)
    );
    let o = SendOutcome::new(SendId(1), vec![NodeId(1)], vec![]);
    assert_eq!(o.delivered, [NodeId(1)]);

    let mut c = Config::lan();
    c.quorum = Some(2);
    c.validate().unwrap();
    let mut bad = Config::lan();
    bad.max_datagram = 1;
    let e: ConfigError = bad.validate().unwrap_err();
    assert!(e.to_string().contains("max_datagram"), "{e}");

    let mut m = MulticastConfig::default();
    m.interface = MulticastInterface::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        MulticastConfig::with_group(m.group, 27300).port,
        27300,
        "{m:?}"
    );

    let mut n = NodeInfo::new(NodeId(1), "a", SocketAddr::from((Ipv4Addr::LOCALHOST, 1)));
    n.priority = 3;
    assert_eq!(n.rank(), (3, NodeId(1)));

    let reason = match RemovalReason::Left {
        RemovalReason::Left => "left",
        RemovalReason::Failed => "failed",
        _ => "other",
    };
    assert_eq!(reason, "left");
    let accepted = match true.into_admission() {
        Admission::Accept => true,
        Admission::Reject(_) => false,
        _ => false,
    };
    assert!(accepted);
    let _ = Event::Custom(ev);
    assert_eq!(Stats::default().core, CoreStats::default());
    let id: std::result::Result<NodeId, ParseNodeIdError> = "xyz".parse();
    assert!(id.is_err());
    assert_eq!(format!("{:?}", NodeId(0xfeed)), NodeId(0xfeed).to_string());
}
