//! `ferrolb speaker`: the per-node agent against the API server (see `ferrolb_speaker::cluster`).

use std::net::SocketAddr;
use std::process::ExitCode;

use ferrolb_speaker::cluster::{self, Options};
use ferrolb_speaker::logging;

use crate::usage_error;

pub fn run(args: &[String]) -> ExitCode {
    let mut options = Options {
        node_name: std::env::var("NODE_NAME").unwrap_or_default(),
        namespace: std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "ferrolb-system".into()),
        speaker_pods: "app.kubernetes.io/name=ferrolb,app.kubernetes.io/component=speaker".into(),
        metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 7472))),
        memberlist: None,
    };
    let mut memberlist_port = ferrolb_speaker::membership::DEFAULT_PORT;
    let mut secret_file: Option<String> = None;
    let mut pod_ip = std::env::var("POD_IP").ok();
    let mut json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(value) = it.next() else {
            return usage_error(&format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--node-name" => options.node_name = value.clone(),
            "--namespace" => options.namespace = value.clone(),
            "--speaker-pods" => options.speaker_pods = value.clone(),
            "--memberlist-port" => match value.parse() {
                Ok(p) => memberlist_port = p,
                Err(e) => return usage_error(&format!("--memberlist-port {value:?}: {e}")),
            },
            "--memberlist-secret-file" => secret_file = Some(value.clone()),
            "--pod-ip" => pod_ip = Some(value.clone()),
            "--metrics-addr" => match value.parse() {
                Ok(a) => options.metrics_addr = Some(a),
                Err(e) => return usage_error(&format!("--metrics-addr {value:?}: {e}")),
            },
            "--log-format" => {
                json = match value.as_str() {
                    "json" => true,
                    "text" => false,
                    other => {
                        return usage_error(&format!(
                            "--log-format takes text or json, not {other:?}"
                        ))
                    }
                }
            }
            other => return usage_error(&format!("speaker takes no argument '{other}'")),
        }
    }
    if options.node_name.is_empty() {
        return usage_error(
            "speaker needs --node-name (or $NODE_NAME, from the pod's spec.nodeName)",
        );
    }
    if let Some(path) = secret_file {
        let secret = match ferrolb_speaker::membership::read_secret(path.as_ref()) {
            Ok(secret) => secret,
            Err(e) => return usage_error(&format!("--memberlist-secret-file: {e}")),
        };
        let Some(pod_ip) = pod_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
            return usage_error(
                "the memberlist needs this pod's IP: --pod-ip or $POD_IP (status.podIP)",
            );
        };
        options.memberlist = Some(ferrolb_speaker::cluster::Memberlist {
            pod_ip,
            port: memberlist_port,
            secret,
        });
    }
    logging::init(json);
    ferrolb_speaker::run_to_exit(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))?;
        tracing::info!(node = %options.node_name, namespace = %options.namespace, "ferrolb speaker starting");
        cluster::run(client, options, ferrolb_speaker::terminated()).await
    })
}
