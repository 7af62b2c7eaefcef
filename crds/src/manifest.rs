//! Reading manifests: directories (recursively, `*.yaml`/`*.yml`) and files of multi-document YAML.
//! This module is the only place that reads files or parses YAML.
//!
//! The ferrolb kinds are checked strictly, like `kubectl apply --validate=strict`: an unknown field (a
//! typo such as `autoAsign`), a value of the wrong type, an unknown ferrolb kind or an unserved version
//! is an error naming the file, the document and the field. Objects of MetalLB's group `metallb.io` are
//! refused with the rename to make. Services, Namespaces and Secrets are kept for later use (the
//! allocator, `passwordSecret`); every other object is counted and ignored.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    crdgen, BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, Kind, L2Advertisement,
};
use crate::{GROUP, METALLB_GROUP};

/// Where an object came from: a file and the 1-based index of the YAML document in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// 1-based document index within the file.
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// A manifest that could not be read or turned into an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based document index, when the problem is inside one document.
    pub document: Option<usize>,
    /// `kind`, when the document states one.
    pub kind: Option<String>,
    /// `metadata.namespace`, when stated.
    pub namespace: Option<String>,
    /// `metadata.name`, when stated.
    pub name: Option<String>,
    /// The field path (`spec.autoAsign`), when the problem is in one field.
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub problem: String,
}

impl fmt::Display for LoadError {
    /// `file: Kind namespace/name: field: problem`, or `file: document N: problem` when the document
    /// names no object.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => match &self.namespace {
                Some(ns) => write!(f, "{kind} {ns}/{name}: ")?,
                None => write!(f, "{kind} {name}: ")?,
            },
            _ => {
                if let Some(d) = self.document {
                    write!(f, "document {d}: ")?;
                }
                if let Some(kind) = &self.kind {
                    write!(f, "{kind}: ")?;
                }
            }
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.problem)
    }
}

/// The objects of a configuration, as read from manifests or from the API server.
///
/// Build it with the loader ([`load_paths`], [`load_str`]) or push objects yourself
/// ([`Objects::push`]); [`crate::validate()`] turns it into a [`crate::Config`].
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// IPAddressPools.
    pub ip_address_pools: Vec<IPAddressPool>,
    /// BGPPeers.
    pub bgp_peers: Vec<BGPPeer>,
    /// BGPAdvertisements.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// L2Advertisements.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// Communities.
    pub communities: Vec<Community>,
    /// BFDProfiles.
    pub bfd_profiles: Vec<BFDProfile>,
    /// Services (for the allocator and `ferrolb plan`).
    pub services: Vec<Service>,
    /// Namespaces (for `namespaceSelectors`).
    pub namespaces: Vec<Namespace>,
    /// Secrets (for `BGPPeer.passwordSecret`).
    pub secrets: Vec<Secret>,
    /// Nodes (standalone speakers: labels and conditions).
    pub nodes: Vec<Node>,
    /// EndpointSlices (standalone speakers: where a Service's endpoints run).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Documents of other kinds, skipped.
    pub ignored: usize,
    sources: HashMap<(Kind, usize), Source>,
    failed: BTreeSet<(Kind, String)>,
}

/// The ferrolb custom resource types, with their slot in [`Objects`].
pub trait ConfigObject: Resource + DeserializeOwned + Sized {
    /// The kind.
    const KIND: Kind;
    /// The objects of this kind.
    fn all(objects: &Objects) -> &Vec<Self>;
    /// The objects of this kind, mutable.
    fn all_mut(objects: &mut Objects) -> &mut Vec<Self>;
}

macro_rules! config_object {
    ($ty:ty, $kind:expr, $field:ident) => {
        impl ConfigObject for $ty {
            const KIND: Kind = $kind;
            fn all(objects: &Objects) -> &Vec<Self> {
                &objects.$field
            }
            fn all_mut(objects: &mut Objects) -> &mut Vec<Self> {
                &mut objects.$field
            }
        }
    };
}

config_object!(IPAddressPool, Kind::IPAddressPool, ip_address_pools);
config_object!(BGPPeer, Kind::BGPPeer, bgp_peers);
config_object!(BGPAdvertisement, Kind::BGPAdvertisement, bgp_advertisements);
config_object!(L2Advertisement, Kind::L2Advertisement, l2_advertisements);
config_object!(Community, Kind::Community, communities);
config_object!(BFDProfile, Kind::BFDProfile, bfd_profiles);

impl Objects {
    /// Add an object, with where it came from if known.
    pub fn push<T: ConfigObject>(&mut self, object: T, source: Option<Source>) {
        let list = T::all_mut(self);
        list.push(object);
        let index = list.len() - 1;
        if let Some(source) = source {
            self.sources.insert((T::KIND, index), source);
        }
    }

    /// Where the `index`-th object of `kind` came from, if it was loaded from a file.
    pub fn source(&self, kind: Kind, index: usize) -> Option<&Source> {
        self.sources.get(&(kind, index))
    }

    /// Record that an object of `kind` called `name` exists but could not be loaded, so that validation
    /// does not also report references to it as dangling.
    pub fn mark_failed(&mut self, kind: Kind, name: &str) {
        self.failed.insert((kind, name.to_owned()));
    }

    /// Whether an object of `kind` called `name` failed to load.
    pub fn failed_to_load(&self, kind: Kind, name: &str) -> bool {
        self.failed.contains(&(kind, name.to_owned()))
    }

    /// Whether any object of `kind` failed to load (its contents are unknown).
    pub fn any_failed(&self, kind: Kind) -> bool {
        self.failed.iter().any(|(k, _)| *k == kind)
    }

    /// How many objects of `kind` there are.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::IPAddressPool => self.ip_address_pools.len(),
            Kind::BGPPeer => self.bgp_peers.len(),
            Kind::BGPAdvertisement => self.bgp_advertisements.len(),
            Kind::L2Advertisement => self.l2_advertisements.len(),
            Kind::Community => self.communities.len(),
            Kind::BFDProfile => self.bfd_profiles.len(),
        }
    }
}

/// Load every manifest under `paths`: directories are walked recursively for `*.yaml` and `*.yml`
/// (hidden entries skipped, in name order); files are read whatever their extension. Returns the objects
/// that loaded and every problem met.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> (Objects, Vec<LoadError>) {
    let mut loader = Loader::default();
    for path in paths {
        let path = path.as_ref();
        if path.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = collect_yaml_files(path, &mut files) {
                loader
                    .errors
                    .push(file_error(path, format!("cannot read directory: {e}")));
            }
            for file in files {
                loader.load_file(&file);
            }
        } else {
            loader.load_file(path);
        }
    }
    (loader.objects, loader.errors)
}

/// Load the YAML documents of `text` as if read from `file`.
pub fn load_str(text: &str, file: &Path) -> (Objects, Vec<LoadError>) {
    let mut loader = Loader::default();
    loader.load_text(text, file);
    (loader.objects, loader.errors)
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_yaml_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn file_error(file: &Path, problem: String) -> LoadError {
    LoadError {
        file: file.to_owned(),
        document: None,
        kind: None,
        namespace: None,
        name: None,
        field: None,
        problem,
    }
}

#[derive(Default)]
struct Loader {
    objects: Objects,
    errors: Vec<LoadError>,
    schemas: HashMap<Kind, Value>,
}

/// What a document says about itself.
struct Header {
    file: PathBuf,
    document: usize,
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
}

impl Header {
    fn error(&self, field: Option<String>, problem: String) -> LoadError {
        LoadError {
            file: self.file.clone(),
            document: Some(self.document),
            kind: Some(self.kind.clone()),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            field,
            problem,
        }
    }
}

impl Loader {
    fn load_file(&mut self, file: &Path) {
        match std::fs::read_to_string(file) {
            Ok(text) => self.load_text(&text, file),
            Err(e) => self
                .errors
                .push(file_error(file, format!("cannot read: {e}"))),
        }
    }

    fn load_text(&mut self, text: &str, file: &Path) {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let document = i + 1;
            let value = match serde_yaml::Value::deserialize(doc) {
                Ok(v) => v,
                Err(e) => {
                    let mut err = file_error(file, format!("not valid YAML: {e}"));
                    err.document = Some(document);
                    self.errors.push(err);
                    // The parser cannot resynchronise after a syntax error.
                    return;
                }
            };
            if value.is_null() {
                continue; // empty document, e.g. a trailing `---` or only comments
            }
            match serde_json::to_value(&value) {
                Ok(json) => self.load_value(json, file, document),
                Err(e) => {
                    let mut err = file_error(file, format!("not a JSON-compatible document: {e}"));
                    err.document = Some(document);
                    self.errors.push(err);
                }
            }
        }
    }

    fn load_value(&mut self, value: Value, file: &Path, document: usize) {
        let doc_error = |problem: String| LoadError {
            file: file.to_owned(),
            document: Some(document),
            kind: None,
            namespace: None,
            name: None,
            field: None,
            problem,
        };
        let Some(map) = value.as_object() else {
            self.errors.push(doc_error(
                "not a Kubernetes object: the document is not a mapping".into(),
            ));
            return;
        };
        let (Some(api_version), Some(kind)) = (
            map.get("apiVersion").and_then(Value::as_str),
            map.get("kind").and_then(Value::as_str),
        ) else {
            self.errors.push(doc_error(
                "not a Kubernetes object: apiVersion and kind are required".into(),
            ));
            return;
        };
        let metadata = map.get("metadata");
        let meta_str = |key: &str| {
            metadata
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let header = Header {
            file: file.to_owned(),
            document,
            kind: kind.to_owned(),
            namespace: meta_str("namespace"),
            name: meta_str("name"),
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));

        if kind == "List" && group.is_empty() {
            for item in map
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.load_value(item.clone(), file, document);
            }
            return;
        }

        if group == METALLB_GROUP || group.ends_with(".metallb.io") {
            let target = Kind::from_name(kind)
                .map(|k| k.api_version())
                .unwrap_or_else(|| format!("{GROUP}/{version}"));
            self.errors.push(header.error(
                Some("apiVersion".into()),
                format!(
                    "{api_version} is MetalLB's API; ferrolb serves the same kinds and fields under {GROUP}: change apiVersion to {target}"
                ),
            ));
            return;
        }

        if group == GROUP {
            let Some(k) = Kind::from_name(kind) else {
                let hint = Kind::ALL
                    .iter()
                    .find(|k| {
                        k.name().eq_ignore_ascii_case(kind) || edit_distance(k.name(), kind) <= 2
                    })
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                self.errors.push(header.error(
                    Some("kind".into()),
                    format!(
                        "unknown {GROUP} kind {kind:?}{hint}; known kinds: {}",
                        known.join(", ")
                    ),
                ));
                return;
            };
            if version != k.version() {
                let why = if k == Kind::BGPPeer && version == "v1beta1" {
                    " (MetalLB's v1beta1 BGPPeer is deprecated; v1beta2 takes the same fields)"
                } else {
                    ""
                };
                self.errors.push(header.error(
                    Some("apiVersion".into()),
                    format!(
                        "{kind} is served as {}, not {api_version}{why}",
                        k.api_version()
                    ),
                ));
                if let Some(name) = &header.name {
                    self.objects.mark_failed(k, name);
                }
                return;
            }
            let ok = match k {
                Kind::IPAddressPool => self.load_config_object::<IPAddressPool>(value, &header),
                Kind::BGPPeer => self.load_config_object::<BGPPeer>(value, &header),
                Kind::BGPAdvertisement => {
                    self.load_config_object::<BGPAdvertisement>(value, &header)
                }
                Kind::L2Advertisement => self.load_config_object::<L2Advertisement>(value, &header),
                Kind::Community => self.load_config_object::<Community>(value, &header),
                Kind::BFDProfile => self.load_config_object::<BFDProfile>(value, &header),
            };
            if !ok {
                if let Some(name) = &header.name {
                    self.objects.mark_failed(k, name);
                }
            }
            return;
        }

        if group.is_empty() && version == "v1" {
            match kind {
                "Service" => {
                    if let Some(s) = self.load_core::<Service>(value, &header) {
                        self.objects.services.push(s);
                    }
                }
                "Namespace" => {
                    if let Some(n) = self.load_core::<Namespace>(value, &header) {
                        self.objects.namespaces.push(n);
                    }
                }
                "Secret" => {
                    if let Some(s) = self.load_core::<Secret>(value, &header) {
                        self.objects.secrets.push(s);
                    }
                }
                "Node" => {
                    if let Some(n) = self.load_core::<Node>(value, &header) {
                        self.objects.nodes.push(n);
                    }
                }
                _ => self.objects.ignored += 1,
            }
            return;
        }
        if group == "discovery.k8s.io" && version == "v1" && kind == "EndpointSlice" {
            if let Some(e) = self.load_core::<EndpointSlice>(value, &header) {
                self.objects.endpoint_slices.push(e);
            }
            return;
        }
        self.objects.ignored += 1;
    }

    /// Strict load of a ferrolb object; false if it was refused.
    fn load_config_object<T: ConfigObject>(&mut self, value: Value, header: &Header) -> bool {
        let mut ok = true;
        match &header.name {
            Some(name) if !name.is_empty() => {}
            _ => {
                self.errors.push(header.error(
                    Some("metadata.name".into()),
                    "metadata.name is required".into(),
                ));
                ok = false;
            }
        }
        let schema = self
            .schemas
            .entry(T::KIND)
            .or_insert_with(|| {
                let crd = crdgen::crd(T::KIND);
                let schema = crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref());
                serde_json::to_value(schema.expect("derived CRDs carry a schema"))
                    .expect("schemas serialize")
            })
            .clone();
        let mut value = value;
        if let Some(map) = value.as_object_mut() {
            // A missing name is reported above; do not also report the missing metadata.
            map.entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            // Like the CRD's `default: {}`: a bare L2Advertisement is a complete object.
            if T::KIND.spec_is_optional() {
                map.entry("spec")
                    .or_insert_with(|| Value::Object(Default::default()));
            }
        }
        let mut unknown = Vec::new();
        if let Some(map) = value.as_object() {
            for (key, v) in map {
                match key.as_str() {
                    "apiVersion" | "kind" | "metadata" => {}
                    // Written by controllers; ignored on input for the kinds without a status.
                    "status" if schema["properties"].get("status").is_none() => {}
                    _ => match schema["properties"].get(key) {
                        Some(s) => unknown_fields(s, v, key, &mut unknown),
                        None => unknown.push((key.clone(), suggestion(key, &schema))),
                    },
                }
            }
        }
        for (path, hint) in unknown {
            let hint = hint
                .map(|h| format!(" (did you mean {h}?)"))
                .unwrap_or_default();
            self.errors
                .push(header.error(Some(path), format!("unknown field{hint}")));
            ok = false;
        }
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(object) if ok => {
                let source = Source {
                    file: header.file.clone(),
                    document: header.document,
                };
                self.objects.push(object, Some(source));
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().to_string();
                let field = (path != ".").then_some(path);
                self.errors
                    .push(header.error(field, e.into_inner().to_string()));
                ok = false;
            }
        }
        ok
    }

    fn load_core<T: DeserializeOwned>(&mut self, value: Value, header: &Header) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(object) => Some(object),
            Err(e) => {
                let path = e.path().to_string();
                let field = (path != ".").then_some(path);
                self.errors
                    .push(header.error(field, e.into_inner().to_string()));
                None
            }
        }
    }
}

/// Collect the paths of fields in `value` that `schema` does not define, with a suggestion for each.
fn unknown_fields(
    schema: &Value,
    value: &Value,
    path: &str,
    out: &mut Vec<(String, Option<String>)>,
) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, v) in map {
                    let child = format!("{path}.{key}");
                    match props.get(key) {
                        Some(s) => unknown_fields(s, v, &child, out),
                        None => out.push((child, suggestion(key, schema))),
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|s| s.is_object())
            {
                for (key, v) in map {
                    unknown_fields(additional, v, &format!("{path}[{key}]"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(item_schema, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The known property closest to `key` (same letters in another case, or at most 2 edits away).
fn suggestion(key: &str, schema: &Value) -> Option<String> {
    let props = schema.get("properties")?.as_object()?;
    let (best, distance) = props
        .keys()
        .map(|k| {
            let d = if k.eq_ignore_ascii_case(key) {
                0
            } else {
                edit_distance(k, key)
            };
            (k, d)
        })
        .min_by_key(|(_, d)| *d)?;
    (distance <= 2).then(|| best.clone())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
