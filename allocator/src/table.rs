//! The Services the allocator tracks: records in a slab, addressed by a dense [`Sid`], and a hash index from
//! namespace/name to `Sid`.
//!
//! Why not a `HashMap<ServiceKey, Record>`: at a million Services that map and the IP map took ~150 MiB of
//! buckets, plus a key and a record allocated apart for each Service, so every lookup followed pointers to
//! cold memory. Here the index holds 8 bytes per bucket (the id and 32 bits of the hash, so that growing it
//! never touches a key): 16 MiB at 1M Services. Records sit in one vector in insertion
//! order, and other structures (the IP map, sharing groups) refer to them by `Sid` instead of by key. Keys
//! are stored inline in the slot when they are short (as most are), so that confirming a lookup reads the
//! slot and nothing else.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::service::ServiceKey;

/// A tracked Service's slot. Stable while the Service is tracked; reused after it is removed.
pub(crate) type Sid = u32;

/// Proof of a lookup that found nothing: the key's hash, so that inserting it does not hash it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vacant(u32);

#[derive(Debug, Clone, Copy)]
struct Entry {
    sid: Sid,
    hash: u32,
}

/// Records by [`Sid`], with a namespace/name index.
#[derive(Debug, Clone)]
pub(crate) struct Table<T> {
    slots: Vec<Option<(StoredKey, T)>>,
    /// Empty slots, reused last-freed first.
    vacant: Vec<Sid>,
    index: HashTable<Entry>,
    /// Randomly seeded (foldhash): Service names are user input. Nothing depends on the table's order.
    hasher: DefaultHashBuilder,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            vacant: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T> Table<T> {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.slots
            .reserve(additional.saturating_sub(self.vacant.len()));
        self.index.reserve(additional, |e| spread(e.hash));
    }

    pub fn find(&self, namespace: &str, name: &str) -> Option<Sid> {
        self.lookup(namespace, name).ok()
    }

    /// The Service's slot, or (when it is not tracked) its hash, to insert it without hashing again.
    pub fn lookup(&self, namespace: &str, name: &str) -> Result<Sid, Vacant> {
        let hash = self.hash(namespace, name);
        self.index
            .find(spread(hash), |e| {
                e.hash == hash && self.slot(e.sid).0.is(namespace, name)
            })
            .map(|e| e.sid)
            .ok_or(Vacant(hash))
    }

    /// Adds a Service that is not tracked, with the [`Vacant`] a lookup of its key returned.
    pub fn insert(&mut self, vacant: Vacant, key: StoredKey, value: T) -> Sid {
        let Vacant(hash) = vacant;
        debug_assert_eq!(hash, self.hash_parts(key.parts()));
        debug_assert!(self
            .index
            .find(spread(hash), |e| self.slot(e.sid).0.parts() == key.parts())
            .is_none());
        let sid = match self.vacant.pop() {
            Some(sid) => {
                self.slots[sid as usize] = Some((key, value));
                sid
            }
            None => {
                let sid = Sid::try_from(self.slots.len()).expect("fewer than 2^32 Services");
                self.slots.push(Some((key, value)));
                sid
            }
        };
        self.index
            .insert_unique(spread(hash), Entry { sid, hash }, |e| spread(e.hash));
        sid
    }

    /// Stops tracking a Service; the [`Vacant`] allows adding it back.
    pub fn remove(&mut self, sid: Sid) -> (StoredKey, Vacant, T) {
        let (key, value) = self.slots[sid as usize].take().expect("tracked Service");
        let hash = self.hash_parts(key.parts());
        self.index
            .find_entry(spread(hash), |e| e.sid == sid)
            .expect("indexed")
            .remove();
        self.vacant.push(sid);
        (key, Vacant(hash), value)
    }

    pub fn key(&self, sid: Sid) -> ServiceKey {
        self.slot(sid).0.to_key()
    }

    pub fn namespace(&self, sid: Sid) -> &str {
        self.slot(sid).0.namespace()
    }

    /// Orders two tracked Services by namespace, then name (as [`ServiceKey`] orders).
    pub fn cmp_keys(&self, a: Sid, b: Sid) -> Ordering {
        self.slot(a).0.parts().cmp(&self.slot(b).0.parts())
    }

    pub fn get(&self, sid: Sid) -> &T {
        &self.slot(sid).1
    }

    pub fn get_mut(&mut self, sid: Sid) -> &mut T {
        &mut self.slots[sid as usize]
            .as_mut()
            .expect("tracked Service")
            .1
    }

    /// Every tracked Service, in slot order (unrelated to keys).
    pub fn iter(&self) -> impl Iterator<Item = (Sid, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(sid, s)| s.as_ref().map(|(_, v)| (sid as Sid, v)))
    }

    /// Every tracked Service with its namespace, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Sid, &str, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(sid, s)| s.as_mut().map(|(k, v)| (sid as Sid, k.namespace(), v)))
    }

    fn slot(&self, sid: Sid) -> &(StoredKey, T) {
        self.slots[sid as usize].as_ref().expect("tracked Service")
    }

    fn hash(&self, namespace: &str, name: &str) -> u32 {
        self.hash_parts((namespace.as_bytes(), name.as_bytes()))
    }

    fn hash_parts(&self, parts: (&[u8], &[u8])) -> u32 {
        let h = self.hasher.hash_one(parts);
        (h ^ (h >> 32)) as u32
    }
}

/// Longest `namespace` + `name` stored inline (the slot stays 48 bytes, as a `ServiceKey`'s two `String`s).
const INLINE: usize = 45;

/// A Service's key as the table stores it: the bytes of namespace and name, inline when they fit, else in
/// one allocation.
#[derive(Debug, Clone)]
pub(crate) enum StoredKey {
    Inline {
        namespace_len: u8,
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap {
        namespace_len: usize,
        bytes: Box<str>,
    },
}

impl StoredKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        let (ns, name_bytes) = (namespace.as_bytes(), name.as_bytes());
        let len = ns.len() + name_bytes.len();
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..ns.len()].copy_from_slice(ns);
            bytes[ns.len()..len].copy_from_slice(name_bytes);
            StoredKey::Inline {
                namespace_len: ns.len() as u8,
                len: len as u8,
                bytes,
            }
        } else {
            StoredKey::Heap {
                namespace_len: ns.len(),
                bytes: format!("{namespace}{name}").into_boxed_str(),
            }
        }
    }

    /// Namespace and name, as bytes.
    fn parts(&self) -> (&[u8], &[u8]) {
        let (split, all) = match self {
            StoredKey::Inline {
                namespace_len,
                len,
                bytes,
            } => (usize::from(*namespace_len), &bytes[..usize::from(*len)]),
            StoredKey::Heap {
                namespace_len,
                bytes,
            } => (*namespace_len, bytes.as_bytes()),
        };
        all.split_at(split)
    }

    fn is(&self, namespace: &str, name: &str) -> bool {
        self.parts() == (namespace.as_bytes(), name.as_bytes())
    }

    pub fn namespace(&self) -> &str {
        std::str::from_utf8(self.parts().0).expect("stored from a str")
    }

    pub fn to_key(&self) -> ServiceKey {
        let (ns, name) = self.parts();
        let text = |b| std::str::from_utf8(b).expect("stored from a str");
        ServiceKey::new(text(ns), text(name))
    }
}

/// The stored 32 bits as the table's 64-bit hash: hashbrown takes the bucket from the low bits and the
/// 7-bit tag from the top ones, so both come from the stored hash and stay independent up to 2^25 buckets.
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ServiceKey {
        ServiceKey::new(ns, name)
    }

    fn add<T>(t: &mut Table<T>, ns: &str, name: &str, value: T) -> Sid {
        let vacant = t.lookup(ns, name).expect_err("not tracked yet");
        t.insert(vacant, StoredKey::new(ns, name), value)
    }

    #[test]
    fn finds_what_was_inserted_and_forgets_what_was_removed() {
        let mut t = Table::default();
        let a = add(&mut t, "ns", "a", 1);
        let b = add(&mut t, "ns", "b", 2);
        // Same bytes split differently are different Services.
        let c = add(&mut t, "nsa", "", 3);
        assert_eq!(t.find("ns", "a"), Some(a));
        assert_eq!(t.find("ns", "b"), Some(b));
        assert_eq!(t.find("nsa", ""), Some(c));
        assert_eq!(t.find("n", "sa"), None);
        assert_eq!(t.len(), 3);

        let (removed, vacant, value) = t.remove(a);
        assert_eq!((removed.to_key(), value), (key("ns", "a"), 1));
        assert_eq!(t.lookup("ns", "a"), Err(vacant));
        assert_eq!(t.find("ns", "a"), None);
        assert_eq!(t.len(), 2);
        // The freed slot is reused, and the index follows.
        let d = add(&mut t, "ns", "d", 4);
        assert_eq!(d, a);
        assert_eq!(t.find("ns", "d"), Some(d));
        assert_eq!((t.key(d), *t.get(d)), (key("ns", "d"), 4));
        *t.get_mut(b) += 10;
        let mut all: Vec<(String, i32)> =
            t.iter().map(|(s, v)| (t.key(s).to_string(), *v)).collect();
        all.sort();
        assert_eq!(
            all,
            [("ns/b".into(), 12), ("ns/d".into(), 4), ("nsa/".into(), 3)]
        );
    }

    #[test]
    fn long_keys_and_multibyte_names_round_trip_and_order_as_strings() {
        let long = "n".repeat(63);
        let mut t = Table::default();
        let cases = [
            ("", ""),
            ("a", "b"),
            ("ns", "é-ü"),
            (long.as_str(), "x"),
            ("x", long.as_str()),
            ("kube-system", "ingress-nginx-controller-admission"),
        ];
        let sids: Vec<Sid> = cases.iter().map(|(ns, n)| add(&mut t, ns, n, 0)).collect();
        for ((ns, name), &sid) in cases.iter().zip(&sids) {
            assert_eq!(t.find(ns, name), Some(sid));
            assert_eq!(t.key(sid), key(ns, name));
            assert_eq!(t.namespace(sid), *ns);
        }
        for &a in &sids {
            for &b in &sids {
                assert_eq!(t.cmp_keys(a, b), t.key(a).cmp(&t.key(b)));
            }
        }
        assert_eq!(
            std::mem::size_of::<StoredKey>(),
            std::mem::size_of::<ServiceKey>()
        );
    }

    #[test]
    fn survives_growth_and_churn() {
        let mut t = Table::default();
        for i in 0..5000 {
            add(&mut t, &format!("ns-{}", i % 7), &format!("svc-{i}"), i);
        }
        for i in (0..5000).step_by(3) {
            let sid = t
                .find(&format!("ns-{}", i % 7), &format!("svc-{i}"))
                .unwrap();
            assert_eq!(t.remove(sid).2, i);
        }
        for i in 0..5000 {
            let found = t
                .find(&format!("ns-{}", i % 7), &format!("svc-{i}"))
                .map(|sid| *t.get(sid));
            assert_eq!(found, (i % 3 != 0).then_some(i), "svc-{i}");
        }
        assert_eq!(t.len(), 5000 - 1667);
    }
}
