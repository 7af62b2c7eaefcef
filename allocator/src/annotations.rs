//! The Service annotations the allocator reads, under ferrolb's prefix and MetalLB's two prefixes.
//!
//! Migrating users keep their `metallb.io/…` (or legacy `metallb.universe.tf/…`) annotations working; when both
//! spellings are present, `ferrolb.io/…` wins, then `metallb.io/…`. Every use of an alias is reported so the
//! controller can emit a deprecation-style warning event.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Allocate from this pool only (even if the pool has `autoAssign: false`).
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// Comma-separated list of at most two IPs of different families.
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// Sharing key: Services with equal non-empty keys may share an IP.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// Written by the controller: the pool the current IPs came from. Read back on restart.
pub const IP_ALLOCATED_FROM_POOL: &str = "ferrolb.io/ip-allocated-from-pool";

/// Each key with its MetalLB aliases, in order of precedence.
const ALIASES: [(&str, [&str; 2]); 4] = [
    (
        ADDRESS_POOL,
        [
            "metallb.io/address-pool",
            "metallb.universe.tf/address-pool",
        ],
    ),
    (
        LOAD_BALANCER_IPS,
        [
            "metallb.io/loadBalancerIPs",
            "metallb.universe.tf/loadBalancerIPs",
        ],
    ),
    (
        ALLOW_SHARED_IP,
        [
            "metallb.io/allow-shared-ip",
            "metallb.universe.tf/allow-shared-ip",
        ],
    ),
    (
        IP_ALLOCATED_FROM_POOL,
        [
            "metallb.io/ip-allocated-from-pool",
            "metallb.universe.tf/ip-allocated-from-pool",
        ],
    ),
];

/// Whether `key` is the sharing key under any of its spellings.
pub fn is_sharing_key(key: &str) -> bool {
    ALIASES
        .iter()
        .any(|(k, aliases)| *k == ALLOW_SHARED_IP && (key == *k || aliases.contains(&key)))
}

/// The allocator's annotations, read from a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub address_pool: Option<String>,
    /// Raw value of `loadBalancerIPs` and the key it was read under (for error messages).
    pub load_balancer_ips: Option<(String, String)>,
    pub allow_shared_ip: Option<String>,
    pub allocated_from_pool: Option<String>,
    /// Aliases the user wrote (not the controller-written `ip-allocated-from-pool`).
    pub aliases: Vec<AliasUse>,
}

/// A MetalLB-style annotation found on a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasUse {
    /// The key as written, e.g. `metallb.io/address-pool`.
    pub key: String,
    /// ferrolb's key for the same setting.
    pub canonical: String,
    /// True when a key of higher precedence is also set, so this one has no effect.
    pub shadowed: bool,
}

impl fmt::Display for AliasUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shadowed {
            write!(
                f,
                "annotation {} is ignored because a key of higher precedence is set; use {}",
                self.key, self.canonical
            )
        } else {
            write!(
                f,
                "annotation {} is read as an alias of {}; rename it",
                self.key, self.canonical
            )
        }
    }
}

impl Annotations {
    pub fn read(annotations: &BTreeMap<String, String>) -> Self {
        let mut aliases = Vec::new();
        let mut get = |canonical: &str, report: bool| -> Option<(String, String)> {
            let mut found: Option<(String, String)> = annotations
                .get(canonical)
                .map(|v| (canonical.to_owned(), v.clone()));
            let (_, alias_keys) = ALIASES
                .iter()
                .find(|(c, _)| *c == canonical)
                .expect("known key");
            for key in alias_keys {
                if let Some(value) = annotations.get(*key) {
                    if report {
                        aliases.push(AliasUse {
                            key: (*key).to_owned(),
                            canonical: canonical.to_owned(),
                            shadowed: found.is_some(),
                        });
                    }
                    found.get_or_insert(((*key).to_owned(), value.clone()));
                }
            }
            found
        };
        // An empty value means "not set", as in MetalLB (which tests `!= ""`).
        let non_empty =
            |v: Option<(String, String)>| v.filter(|(_, value)| !value.trim().is_empty());
        let address_pool = non_empty(get(ADDRESS_POOL, true)).map(|(_, v)| v.trim().to_owned());
        let load_balancer_ips = non_empty(get(LOAD_BALANCER_IPS, true));
        let allow_shared_ip = get(ALLOW_SHARED_IP, true)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        let allocated_from_pool = non_empty(get(IP_ALLOCATED_FROM_POOL, false)).map(|(_, v)| v);
        Self {
            address_pool,
            load_balancer_ips,
            allow_shared_ip,
            allocated_from_pool,
            aliases,
        }
    }
}

/// The MetalLB-style annotations on a Service, for the controller's deprecation warning.
pub fn aliases_used(annotations: &BTreeMap<String, String>) -> Vec<AliasUse> {
    Annotations::read(annotations).aliases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ferrolb_keys_are_read_without_warnings() {
        let a = Annotations::read(&map(&[(ADDRESS_POOL, "blue"), (ALLOW_SHARED_IP, "k")]));
        assert_eq!(a.address_pool.as_deref(), Some("blue"));
        assert_eq!(a.allow_shared_ip.as_deref(), Some("k"));
        assert!(a.aliases.is_empty());
    }

    #[test]
    fn both_metallb_prefixes_are_aliases() {
        let a = Annotations::read(&map(&[
            ("metallb.io/address-pool", "red"),
            ("metallb.universe.tf/allow-shared-ip", "k"),
        ]));
        assert_eq!(a.address_pool.as_deref(), Some("red"));
        assert_eq!(a.allow_shared_ip.as_deref(), Some("k"));
        assert_eq!(a.aliases.len(), 2);
        assert!(a.aliases.iter().all(|u| !u.shadowed));
        assert_eq!(a.aliases[0].canonical, ADDRESS_POOL);
    }

    #[test]
    fn ferrolb_key_wins_and_shadowed_alias_is_reported() {
        let a = Annotations::read(&map(&[
            (ADDRESS_POOL, "blue"),
            ("metallb.io/address-pool", "red"),
            ("metallb.universe.tf/address-pool", "green"),
        ]));
        assert_eq!(a.address_pool.as_deref(), Some("blue"));
        assert_eq!(a.aliases.len(), 2);
        assert!(a.aliases.iter().all(|u| u.shadowed));
        // metallb.io/ wins over the legacy prefix.
        let b = Annotations::read(&map(&[
            ("metallb.io/address-pool", "red"),
            ("metallb.universe.tf/address-pool", "green"),
        ]));
        assert_eq!(b.address_pool.as_deref(), Some("red"));
        assert_eq!(b.aliases.iter().filter(|u| u.shadowed).count(), 1);
    }

    #[test]
    fn allocated_from_pool_alias_is_read_silently() {
        let a = Annotations::read(&map(&[("metallb.io/ip-allocated-from-pool", "red")]));
        assert_eq!(a.allocated_from_pool.as_deref(), Some("red"));
        assert!(a.aliases.is_empty());
    }

    #[test]
    fn empty_values_mean_unset() {
        let a = Annotations::read(&map(&[
            (ADDRESS_POOL, ""),
            (LOAD_BALANCER_IPS, " "),
            (ALLOW_SHARED_IP, ""),
        ]));
        assert_eq!(a, Annotations::default());
    }
}
