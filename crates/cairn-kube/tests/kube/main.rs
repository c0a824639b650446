//! Integration tests against a real kube-apiserver (started by
//! `scripts/kube.sh`, found through `CAIRN_TEST_KUBECONFIG`). Without one
//! they are skipped with a note, unless `CAIRN_REQUIRE_KUBE=1`, when they
//! fail. There is no kubelet: tests create Nodes, volumes, claims and Pods
//! (with `spec.nodeName`) themselves, and a temporary directory laid out
//! like the kubelet's pods directory holds the volume data.

mod backup;
mod block;
mod cancel;
mod common;
mod lock;
mod maintenance;
mod provision;
mod queue;
mod restart;
mod restore_new;
mod s3;
mod schedule;
mod snapshot;
mod tenant;
mod velero;
mod velero_cancel;
mod velero_cluster;
mod velero_fakes;
mod velero_tls;
mod velero_writes;
