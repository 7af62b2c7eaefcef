//! Manifests for tests that run `ferrolb standalone`: a LoadBalancer Service with its EndpointSlice, and
//! writing a manifest the way an editor or a config-management tool does.

use std::path::Path;

/// A LoadBalancer Service (port 80/TCP) and one EndpointSlice with a ready endpoint on each listed node.
#[derive(Debug, Clone)]
pub struct TestService<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// `IPv4` or `IPv6`.
    pub family: &'a str,
    pub cluster_ip: &'a str,
    /// `externalTrafficPolicy: Local` (else Cluster).
    pub local: bool,
    /// `metadata.creationTimestamp` (orders standalone allocation: older first).
    pub created: Option<&'a str>,
    pub annotations: &'a [(&'a str, &'a str)],
    /// The nodes with an endpoint.
    pub endpoints_on: &'a [&'a str],
}

impl<'a> TestService<'a> {
    /// An IPv4, externalTrafficPolicy Cluster Service with no endpoint and no annotation.
    pub fn new(namespace: &'a str, name: &'a str, cluster_ip: &'a str) -> Self {
        TestService {
            namespace,
            name,
            family: "IPv4",
            cluster_ip,
            local: false,
            created: None,
            annotations: &[],
            endpoints_on: &[],
        }
    }

    /// The two YAML documents.
    pub fn yaml(&self) -> String {
        let TestService {
            namespace,
            name,
            family,
            cluster_ip,
            ..
        } = *self;
        let policy = if self.local { "Local" } else { "Cluster" };
        let mut metadata = format!("name: {name}, namespace: {namespace}");
        if let Some(created) = self.created {
            metadata.push_str(&format!(", creationTimestamp: \"{created}\""));
        }
        if !self.annotations.is_empty() {
            let pairs: Vec<String> = self
                .annotations
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect();
            metadata.push_str(&format!(", annotations: {{{}}}", pairs.join(", ")));
        }
        let mut endpoints = String::new();
        for (k, node) in self.endpoints_on.iter().enumerate() {
            let addr = if family == "IPv4" {
                format!("10.244.{}.10", k + 1)
            } else {
                format!("fd00:244:{}::10", k + 1)
            };
            endpoints.push_str(&format!(
                "- addresses: [\"{addr}\"]\n  nodeName: {node}\n  conditions: {{ready: true, serving: true, terminating: false}}\n"
            ));
        }
        if endpoints.is_empty() {
            endpoints = "[]\n".into();
        }
        format!(
            r#"apiVersion: v1
kind: Service
metadata: {{{metadata}}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: {policy}
  clusterIP: "{cluster_ip}"
  clusterIPs: ["{cluster_ip}"]
  ipFamilies: [{family}]
  ports: [{{port: 80, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: {family}
endpoints:
{endpoints}"#
        )
    }
}

/// Writes `dir/name` through a temporary file and a rename, so that a reader never sees half a file.
pub fn write_atomically(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))
}
