//! The mock API-server tier: executors run against an in-memory API (the
//! test kit's `cairn_testkit::kube::mock::ApiServer`) served to a real
//! `kube::Client`, so what they write, and in which order, is checked
//! without a cluster. The decisions they apply are unit-tested in the
//! crate; the apiserver tier (`tests/kube`) runs them against a real
//! kube-apiserver.

mod velero;

use std::sync::Arc;
use std::time::Duration;

use cairn_kube::controller::velero::VeleroConfig;
use cairn_kube::controller::{self, Context, assign::Limits};
use cairn_kube::metrics::Metrics;
use cairn_testkit::kube::mock::ApiServer;
use kube::runtime::events::{Recorder, Reporter};

/// The controller's context on `api`, serving Velero in namespace `velero`.
pub(crate) fn context(api: &ApiServer) -> Arc<Context> {
    let client = api.client();
    let (metrics, _) = Metrics::controller();
    let reporter = Reporter {
        controller: "cairn-controller".into(),
        instance: None,
    };
    Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client, reporter),
        metrics,
        config: controller::Config {
            namespace: None,
            agent_namespace: "cairn-system".into(),
            helper_image: "pause".into(),
            limits: Limits {
                lease_secs: 40,
                agent_timeout_secs: 300,
            },
            resync: Duration::from_secs(60),
            wait_interval: Duration::from_secs(10),
            clock: Arc::new(cairn_kube::clock::SystemClock),
            cache_dir: None,
            admins: cairn_kube::trust::Admins::new(["velero"]),
            cluster: "test".into(),
            maintenance_image: None,
            velero: Some(VeleroConfig::new("velero")),
        },
    })
}
