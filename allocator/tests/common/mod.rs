//! Builders shared by the integration tests. Addresses: 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 and
//! 100.64.0.0/10 only.
#![allow(dead_code)]

use std::net::IpAddr;

use ferrolb_allocator::*;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

pub fn pool(name: &str, cidrs: &[&str]) -> PoolConfig {
    PoolConfig::new(name, cidrs)
}

pub fn manual(mut p: PoolConfig) -> PoolConfig {
    p.auto_assign = false;
    p
}

pub fn buggy(mut p: PoolConfig) -> PoolConfig {
    p.avoid_buggy_ips = true;
    p
}

pub fn allocation(mut p: PoolConfig, a: ServiceAllocation) -> PoolConfig {
    p.allocation = Some(a);
    p
}

pub fn priority(p: PoolConfig, priority: i32) -> PoolConfig {
    allocation(
        p,
        ServiceAllocation {
            priority,
            ..Default::default()
        },
    )
}

pub fn for_namespaces(p: PoolConfig, namespaces: &[&str]) -> PoolConfig {
    allocation(
        p,
        ServiceAllocation {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// A single-stack IPv4 LoadBalancer Service.
pub fn svc(ns: &str, name: &str) -> ServiceView {
    ServiceView::load_balancer(ns, name)
}

pub trait ServiceExt {
    fn ann(self, key: &str, value: &str) -> Self;
    fn label(self, key: &str, value: &str) -> Self;
    fn ns_label(self, key: &str, value: &str) -> Self;
    fn ports(self, ports: &[ServicePort]) -> Self;
    fn v6(self) -> Self;
    fn dual(self, policy: IpFamilyPolicy, primary: IpFamily) -> Self;
    fn local(self, selector: &[(&str, &str)]) -> Self;
    fn class(self, class: &str) -> Self;
    fn status(self, ips: &[&str]) -> Self;
    fn lb_ip(self, ip: &str) -> Self;
}

impl ServiceExt for ServiceView {
    fn ann(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
    fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    fn ns_label(mut self, key: &str, value: &str) -> Self {
        self.namespace_labels.insert(key.into(), value.into());
        self
    }
    fn ports(mut self, ports: &[ServicePort]) -> Self {
        self.ports = ports.to_vec();
        self
    }
    fn v6(mut self) -> Self {
        self.cluster_ip_families = vec![IpFamily::IPv6];
        self.ip_families = vec![IpFamily::IPv6];
        self
    }
    fn dual(mut self, policy: IpFamilyPolicy, primary: IpFamily) -> Self {
        self.cluster_ip_families = vec![primary, primary.other()];
        self.ip_families = vec![primary, primary.other()];
        self.ip_family_policy = Some(policy);
        self
    }
    fn local(mut self, selector: &[(&str, &str)]) -> Self {
        self.external_traffic_policy = ExternalTrafficPolicy::Local;
        self.selector = selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
    fn class(mut self, class: &str) -> Self {
        self.load_balancer_class = Some(class.into());
        self
    }
    fn status(mut self, list: &[&str]) -> Self {
        self.ingress_ips = ips(list);
        self
    }
    fn lb_ip(mut self, ip: &str) -> Self {
        self.load_balancer_ip = Some(ip.into());
        self
    }
}

pub fn allocator(pools: Vec<PoolConfig>) -> Allocator {
    let mut a = Allocator::new(None);
    a.set_pools(pools).expect("valid pools");
    a
}

/// Reconciles and returns the IPs, or the error.
pub fn assign(a: &mut Allocator, s: &ServiceView) -> Result<Vec<IpAddr>, AllocationError> {
    let out = match a.reconcile(s) {
        Reconciled::Handled { result, .. } => result.map(|x| x.ips),
        Reconciled::Ignored { reason, .. } => panic!("{} ignored: {reason}", s.key()),
    };
    a.check_invariants().unwrap();
    out
}

pub fn events(a: &mut Allocator, s: &ServiceView) -> Vec<AllocEvent> {
    match a.reconcile(s) {
        Reconciled::Handled { events, .. } => events,
        Reconciled::Ignored { .. } => Vec::new(),
    }
}

/// The Service as the controller would write it back: status = its assignment, plus the pool annotation.
pub fn written_back(s: &ServiceView, a: Option<&Assignment>) -> ServiceView {
    let mut s = s.clone();
    s.ingress_ips = a.map(|a| a.ips.clone()).unwrap_or_default();
    s.annotations.remove(annotations::IP_ALLOCATED_FROM_POOL);
    if let Some(p) = a.and_then(|a| a.pool.clone()) {
        s.annotations
            .insert(annotations::IP_ALLOCATED_FROM_POOL.into(), p);
    }
    s
}
