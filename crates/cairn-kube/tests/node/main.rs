//! Tests on a real node: a kubelet and containerd on this machine, joined
//! to a control plane (`scripts/kube.sh start DIR --node`, then
//! `scripts/node.sh start DIR CAIRN.tar --forward S3_PORT`, then
//! `source DIR/node-env`), with the S3 server of scripts/garage.sh (its
//! env sourced too). Pods really run, from images imported locally. Without
//! `CAIRN_TEST_NODE=1` they are skipped with a note, unless
//! `CAIRN_REQUIRE_NODE=1`, when they fail. They read the node's files
//! (/var/log/pods, /var/lib/kubelet), so they run as root on the node's
//! machine.

mod agent_restart;
mod block;
mod common;
mod deploy;
mod fixture;
mod helper;
mod hooks;
mod maintenance;
mod postgres;
mod smoke;
mod volumes;
