//! The JSON-lines rendering of events used by `espial agent` and `espial demo --json`.
//!
//! One JSON object per event with an `"event"` field named as in the original package:
//! `listening`, `added_node`, `removed_node` (with `"reason": "left" | "failed"`),
//! `node_accepted`, `node_rejected` (with `"reason"`), `new_master`, `promotion` (with
//! `"previous"`), `demotion` (with `"new_master"`), `custom` (with `"name"`, `"from"`,
//! `"data"`), plus `"node"` (`id`, `name`, `addr`, `metadata`) where a node is concerned and
//! `"ts_ms"` (milliseconds since the Unix epoch). Extra events: `updated_node` (metadata or
//! subscriptions changed), `send_outcome`, `reply`, `request_done`.
//!
//! `data` is the payload as a string when it is UTF-8, otherwise `null` with the bytes in
//! `"data_hex"`.

use espial_core::{Event, NodeId, NodeInfo};
use serde_json::{json, Map, Value};

/// A node as rendered in JSON lines: `{"id", "name", "addr", "metadata"}` plus
/// `"master_eligible"`.
///
/// ```
/// use espial_core::{NodeId, NodeInfo};
/// let n = NodeInfo::new(NodeId(255), "a", "127.0.0.1:5".parse().unwrap());
/// let v = espial::jsonl::node_json(&n);
/// assert_eq!(v["id"], "000000000000000000000000000000ff");
/// assert_eq!(v["addr"], "127.0.0.1:5");
/// ```
pub fn node_json(n: &NodeInfo) -> Value {
    json!({
        "id": n.id.to_string(),
        "name": n.name,
        "addr": n.addr.to_string(),
        "metadata": n.metadata.as_map(),
        "master_eligible": n.master_eligible,
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Payload as JSON: `("data": string)` when UTF-8, else `null` and `"data_hex"`.
fn put_data(o: &mut Map<String, Value>, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(s) => {
            o.insert("data".into(), Value::String(s.to_string()));
        }
        Err(_) => {
            o.insert("data".into(), Value::Null);
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            o.insert("data_hex".into(), Value::String(hex));
        }
    }
}

fn id_or_null(id: Option<NodeId>) -> Value {
    id.map_or(Value::Null, |i| Value::String(i.to_string()))
}

/// Renders one event. `me` is the emitting node; `lookup` finds other nodes by id (to fill
/// `"node"` for `new_master` and `custom`).
///
/// ```
/// use espial_core::{Event, NodeId, NodeInfo, RemovalReason};
/// let me = NodeInfo::new(NodeId(1), "a", "127.0.0.1:5".parse().unwrap());
/// let gone = NodeInfo::new(NodeId(2), "b", "127.0.0.2:5".parse().unwrap());
/// let e = Event::NodeRemoved { node: gone, reason: RemovalReason::Left };
/// let v = espial::jsonl::event_json(&e, &me, |_| None);
/// assert_eq!(v["event"], "removed_node");
/// assert_eq!(v["reason"], "left");
/// assert_eq!(v["node"]["name"], "b");
/// assert!(v["ts_ms"].as_u64().unwrap() > 0);
/// ```
pub fn event_json(e: &Event, me: &NodeInfo, lookup: impl Fn(NodeId) -> Option<NodeInfo>) -> Value {
    let mut o = Map::new();
    o.insert("event".into(), Value::String(e.name().to_string()));
    let node = |n: &NodeInfo, o: &mut Map<String, Value>| {
        o.insert("node".into(), node_json(n));
    };
    match e {
        Event::Listening { node: n } => node(n, &mut o),
        Event::NodeAdded { node: n } | Event::NodeUpdated { node: n } => node(n, &mut o),
        Event::NodeRemoved { node: n, reason } => {
            node(n, &mut o);
            o.insert("reason".into(), reason.as_str().into());
        }
        Event::Accepted { by } => {
            node(me, &mut o);
            o.insert("by".into(), node_json(by));
        }
        Event::Rejected { by, reason } => {
            node(me, &mut o);
            o.insert("by".into(), by.to_string().into());
            o.insert("reason".into(), reason.clone().into());
        }
        Event::NewMaster {
            master,
            node: n,
            term,
        } => {
            let info = n.clone().or_else(|| lookup(*master));
            match info {
                Some(n) => node(&n, &mut o),
                None => {
                    o.insert("node".into(), json!({ "id": master.to_string() }));
                }
            }
            o.insert("term".into(), (*term).into());
        }
        Event::Promotion { previous, term } => {
            node(me, &mut o);
            o.insert("previous".into(), id_or_null(*previous));
            o.insert("term".into(), (*term).into());
        }
        Event::Demotion { new_master, term } => {
            node(me, &mut o);
            o.insert("new_master".into(), id_or_null(*new_master));
            o.insert("term".into(), (*term).into());
        }
        Event::NoMaster { previous } => {
            node(me, &mut o);
            o.insert("previous".into(), previous.to_string().into());
        }
        Event::Custom(c) => {
            o.insert("name".into(), c.name.clone().into());
            o.insert("from".into(), c.from.to_string().into());
            put_data(&mut o, &c.data);
            if let Some(r) = c.request {
                o.insert("request".into(), r.0.into());
            }
            if let Some(n) = lookup(c.from) {
                node(&n, &mut o);
            }
        }
        Event::SendOutcome(s) => {
            o.insert("send".into(), s.send.0.into());
            let ids =
                |v: &[NodeId]| Value::from(v.iter().map(|i| i.to_string()).collect::<Vec<_>>());
            o.insert("delivered".into(), ids(&s.delivered));
            o.insert("failed".into(), ids(&s.failed));
        }
        Event::Reply {
            request,
            from,
            data,
        } => {
            o.insert("request".into(), request.0.into());
            o.insert("from".into(), from.to_string().into());
            put_data(&mut o, data);
        }
        Event::RequestDone {
            request,
            answered,
            missing,
        } => {
            o.insert("request".into(), request.0.into());
            let ids =
                |v: &[NodeId]| Value::from(v.iter().map(|i| i.to_string()).collect::<Vec<_>>());
            o.insert("answered".into(), ids(answered));
            o.insert("missing".into(), ids(missing));
        }
        Event::HandshakeFailed { addr, reason } => {
            node(me, &mut o);
            o.insert("addr".into(), addr.to_string().into());
            o.insert("reason".into(), reason.clone().into());
        }
        Event::EventsMissed { from, name, count } => {
            o.insert("from".into(), from.to_string().into());
            o.insert(
                "name".into(),
                name.as_ref().map_or(Value::Null, |n| n.clone().into()),
            );
            o.insert("count".into(), (*count).into());
        }
        // An event this version does not render field by field: its name and debug form,
        // so that agents print every event.
        _ => {
            o.insert("detail".into(), format!("{e:?}").into());
        }
    }
    o.insert("ts_ms".into(), now_ms().into());
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use espial_core::CustomEvent;

    fn n(i: u128, name: &str) -> NodeInfo {
        NodeInfo::new(NodeId(i), name, "127.0.0.1:9".parse().unwrap())
    }

    #[test]
    fn contract_fields() {
        let me = n(1, "me");
        let other = n(2, "other");
        let look = |id: NodeId| (id == NodeId(2)).then(|| other.clone());
        let v = event_json(
            &Event::Promotion {
                previous: Some(NodeId(2)),
                term: 3,
            },
            &me,
            look,
        );
        assert_eq!(v["event"], "promotion");
        assert_eq!(v["previous"], NodeId(2).to_string());
        assert_eq!(v["node"]["name"], "me");
        let v = event_json(
            &Event::Demotion {
                new_master: None,
                term: 4,
            },
            &me,
            look,
        );
        assert_eq!(v["new_master"], Value::Null);
        let v = event_json(
            &Event::NoMaster {
                previous: NodeId(2),
            },
            &me,
            look,
        );
        assert_eq!(v["event"], "no_master");
        assert_eq!(v["previous"], NodeId(2).to_string());
        let v = event_json(
            &Event::NewMaster {
                master: NodeId(2),
                node: None,
                term: 1,
            },
            &me,
            look,
        );
        assert_eq!(v["node"]["name"], "other");
        let v = event_json(
            &Event::Custom(CustomEvent::new("jobs", NodeId(2), vec![0xff, 0])),
            &me,
            look,
        );
        assert_eq!(v["name"], "jobs");
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["data_hex"], "ff00");
        let v = event_json(
            &Event::Rejected {
                by: "127.0.0.2:9".parse().unwrap(),
                reason: "no".into(),
            },
            &me,
            look,
        );
        assert_eq!(v["event"], "node_rejected");
        assert_eq!(v["reason"], "no");
        let v = event_json(
            &Event::HandshakeFailed {
                addr: "127.0.0.3:9".parse().unwrap(),
                reason: "different cluster key?".into(),
            },
            &me,
            look,
        );
        assert_eq!(v["event"], "handshake_failed");
        assert_eq!(v["addr"], "127.0.0.3:9");
        assert_eq!(v["reason"], "different cluster key?");
        assert_eq!(v["node"]["name"], "me");
    }
}
