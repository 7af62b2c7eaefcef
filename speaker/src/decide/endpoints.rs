//! Where a Service's endpoints are and whether they serve: the input of "should this node announce".

/// One endpoint of a Service (`EndpointSlice.endpoints[]`), with its conditions as the API gives them
/// (`None`: unset).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub node: Option<String>,
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

impl Endpoint {
    /// MetalLB's rule: `ready` unset or true, or `serving` true (a terminating endpoint that still
    /// serves counts).
    pub fn can_serve(&self) -> bool {
        self.ready != Some(false) || self.serving == Some(true)
    }

    /// Serving and not terminating: where new flows should go.
    pub fn is_active(&self) -> bool {
        self.can_serve() && self.terminating != Some(true)
    }

    /// Terminating but still serving: existing flows drain here.
    pub fn is_draining(&self) -> bool {
        self.can_serve() && self.terminating == Some(true)
    }
}

/// A Service's endpoints seen from one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    pub active_here: bool,
    pub draining_here: bool,
    pub active_anywhere: bool,
    pub serving_anywhere: bool,
}

impl Presence {
    pub fn of(endpoints: &[Endpoint], node: &str) -> Presence {
        let mut p = Presence::default();
        for e in endpoints {
            let here = e.node.as_deref() == Some(node);
            p.active_here |= here && e.is_active();
            p.draining_here |= here && e.is_draining();
            p.active_anywhere |= e.is_active();
            p.serving_anywhere |= e.can_serve();
        }
        p
    }

    /// Whether the node should announce the Service (BGP), or why not.
    ///
    /// `Cluster`: any serving endpoint anywhere. `Local`: an active endpoint on this node; a node with only
    /// draining endpoints withdraws, unless no node has an active one (then it keeps announcing, since
    /// withdrawing everywhere would blackhole the flows that still drain).
    pub fn should_announce(&self, local: bool) -> Result<(), String> {
        if !self.serving_anywhere {
            return Err("the Service has no serving endpoint".into());
        }
        if !local || self.active_here {
            return Ok(());
        }
        if self.draining_here {
            if self.active_anywhere {
                return Err("externalTrafficPolicy Local: the endpoints on this node are terminating and other nodes have live ones".into());
            }
            return Ok(());
        }
        Err("externalTrafficPolicy Local: no serving endpoint on this node".into())
    }
}
