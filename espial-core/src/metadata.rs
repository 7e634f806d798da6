//! Size-limited string metadata attached to a node.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default limit on the encoded size of a node's metadata, in bytes (keys + values).
pub const DEFAULT_MAX_METADATA_BYTES: usize = 512;

/// A node's metadata: a small string map gossiped with its membership entry.
///
/// ```
/// use espial_core::Metadata;
/// let m = Metadata::from_pairs([("role", "api")], 512).unwrap();
/// assert_eq!(m.get("role"), Some("api"));
/// assert!(Metadata::from_pairs([("k", "x".repeat(600))], 512).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata(BTreeMap<String, String>);

/// Metadata that does not fit the configured limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("metadata is {size} bytes (keys plus values), over the limit of {limit}; keep it small, it is gossiped to every node")]
pub struct MetadataTooLarge {
    /// Size of the rejected metadata in bytes.
    pub size: usize,
    /// The configured limit.
    pub limit: usize,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }
    /// Builds metadata from pairs, refusing it when keys plus values exceed `limit` bytes.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
        limit: usize,
    ) -> Result<Self, MetadataTooLarge> {
        let m = Metadata(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        m.check(limit)?;
        Ok(m)
    }
    /// Total size of keys plus values in bytes.
    pub fn size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
    /// Errors when the metadata exceeds `limit` bytes.
    pub fn check(&self, limit: usize) -> Result<(), MetadataTooLarge> {
        let size = self.size();
        if size > limit {
            Err(MetadataTooLarge { size, limit })
        } else {
            Ok(())
        }
    }
    /// Looks up a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    /// Sets a key (without checking the limit; call [`Metadata::check`]).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }
    /// Removes a key.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }
    /// Iterates over the pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The underlying map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}
