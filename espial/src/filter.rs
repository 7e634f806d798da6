//! The connection filter: the application's say on who joins the cluster.

use espial_core::{Admission, AdmissionRequest, Metadata, NodeId};
use espial_net::driver::AdmissionFilter;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a joining node told about itself, given to the connection filter.
///
/// The member that receives the join request runs its filter; its decision admits the node
/// to the whole cluster (every other member learns of it by gossip). So every node that may
/// be contacted first should run the same filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRequest {
    /// The joiner's node id.
    pub id: NodeId,
    /// Its name (host name by default) as it claims it.
    pub name: String,
    /// The address it asks to be reached at.
    pub addr: SocketAddr,
    /// The address its datagrams actually came from.
    pub source: SocketAddr,
    /// Its metadata.
    pub metadata: Metadata,
    /// Whether it may become master.
    pub master_eligible: bool,
    /// Its identity public key, verified in the handshake (clusters with identity keys only).
    /// Unlike `name` and `metadata`, this cannot be forged.
    pub verified_key: Option<Vec<u8>>,
}

impl From<AdmissionRequest> for ConnectionRequest {
    fn from(r: AdmissionRequest) -> Self {
        ConnectionRequest {
            id: r.node.id,
            name: r.node.name,
            addr: r.node.addr,
            source: r.source,
            metadata: r.node.metadata,
            master_eligible: r.node.master_eligible,
            verified_key: r.verified_key,
        }
    }
}

/// A connection filter's answer: `true`/`false`, `Ok(())`/`Err(reason)`, or an
/// [`Admission`].
///
/// ```
/// use espial::IntoAdmission;
/// use espial_core::Admission;
/// assert_eq!(true.into_admission(), Admission::Accept);
/// assert!(matches!(false.into_admission(), Admission::Reject(_)));
/// let r: Result<(), String> = Err("not on the allow list".into());
/// assert_eq!(r.into_admission(), Admission::Reject("not on the allow list".into()));
/// ```
pub trait IntoAdmission {
    /// Converts to the core's decision.
    fn into_admission(self) -> Admission;
}

impl IntoAdmission for bool {
    fn into_admission(self) -> Admission {
        if self {
            Admission::Accept
        } else {
            Admission::Reject("rejected by the connection filter".into())
        }
    }
}

impl IntoAdmission for Admission {
    fn into_admission(self) -> Admission {
        self
    }
}

impl<S: Into<String>> IntoAdmission for Result<(), S> {
    fn into_admission(self) -> Admission {
        match self {
            Ok(()) => Admission::Accept,
            Err(reason) => Admission::Reject(reason.into()),
        }
    }
}

pub(crate) fn boxed<F, Fut, R>(f: F) -> AdmissionFilter
where
    F: Fn(ConnectionRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoAdmission,
{
    let f = Arc::new(f);
    Arc::new(move |req: AdmissionRequest| {
        let fut = f(ConnectionRequest::from(req));
        Box::pin(async move { fut.await.into_admission() })
    })
}
