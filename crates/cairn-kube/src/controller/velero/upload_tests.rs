use super::*;
use crate::crd::JobProgress;

fn spec() -> UploadSpec {
    serde_json::from_value(json!({
        "snapshotType": "CSI",
        "csiSnapshot": {"volumeSnapshot": "velero-db-x1", "snapshotClass": "csi"},
        "sourcePVC": "db", "sourceNamespace": "shop",
        "backupStorageLocation": "default", "datamover": "cairn",
    }))
    .expect("spec")
}

fn job(phase: Phase) -> JobStatus {
    JobStatus {
        phase,
        node: Some("n1".into()),
        ..Default::default()
    }
}

const NOW: i64 = 1_700_000_000;

#[test]
fn a_new_upload_starts_its_job_and_a_bad_one_fails_naming_the_field() {
    let none = Value::Null;
    assert_eq!(decide(("", &none), &spec(), None, NOW), Step::Start);
    assert_eq!(decide(("New", &none), &spec(), None, NOW), Step::Start);
    let mut bad = spec();
    bad.source_pvc.clear();
    match decide(("", &none), &bad, None, NOW) {
        Step::End(v) => {
            assert_eq!(v["phase"], "Failed");
            assert!(
                v["message"]
                    .as_str()
                    .expect("message")
                    .contains("sourcePVC")
            );
        }
        other => panic!("{other:?}"),
    }
    bad = spec();
    bad.snapshot_type = "FS".into();
    assert!(matches!(decide(("", &none), &bad, None, NOW), Step::End(v) if v["phase"] == "Failed"));
}

#[test]
fn phases_follow_the_job_and_never_go_back() {
    let none = Value::Null;
    let write =
        |phase: &str, status: &Value, j: &JobStatus| decide((phase, status), &spec(), Some(j), NOW);
    assert!(
        matches!(write("", &none, &job(Phase::New)), Step::Write(v) if v["phase"] == "Accepted")
    );
    assert!(
        matches!(write("Accepted", &none, &job(Phase::Assigned)), Step::Write(v) if v["phase"] == "Prepared" && v["node"] == "n1")
    );
    let mut running = job(Phase::InProgress);
    running.progress = Some(JobProgress::new(1, 100, 3, 300));
    match write("Prepared", &none, &running) {
        Step::Write(v) => {
            assert_eq!(v["phase"], "InProgress");
            assert_eq!(v["progress"], json!({"totalBytes": 300, "bytesDone": 100}));
        }
        other => panic!("{other:?}"),
    }
    // Shown already: nothing to write.
    let shown = json!({"phase": "InProgress", "node": "n1", "progress": {"totalBytes": 300, "bytesDone": 100}});
    assert_eq!(write("InProgress", &shown, &running), Step::Nothing);
    // An agent restart puts the job back to Assigned: the upload stays InProgress.
    assert!(matches!(
        write("InProgress", &shown, &job(Phase::Assigned)),
        Step::Nothing | Step::Write(_)
    ));
    if let Step::Write(v) = write("InProgress", &shown, &job(Phase::Assigned)) {
        assert_eq!(v["phase"], "InProgress");
    }
}

#[test]
fn completion_carries_every_field_velero_copies_in_one_write() {
    let mut done = job(Phase::Completed);
    done.snapshot_id = Some("ab".repeat(32));
    done.progress = Some(JobProgress::new(3, 300, 3, 300));
    done.incremental_bytes = Some(42);
    match decide(("InProgress", &Value::Null), &spec(), Some(&done), NOW) {
        Step::End(v) => {
            assert_eq!(v["phase"], "Completed");
            assert_eq!(v["snapshotID"], "ab".repeat(32));
            assert_eq!(v["progress"]["totalBytes"], 300);
            assert_eq!(v["incrementalBytes"], 42);
            assert_eq!(v["nodeOS"], "linux");
            assert_eq!(v["node"], "n1");
            assert!(v["completionTimestamp"].is_string());
        }
        other => panic!("{other:?}"),
    }
    let mut failed = job(Phase::Failed);
    failed.message = Some("disk on fire".into());
    assert!(
        matches!(decide(("InProgress", &Value::Null), &spec(), Some(&failed), NOW),
        Step::End(v) if v["phase"] == "Failed" && v["message"] == "disk on fire")
    );
    for end in ["Completed", "Failed", "Canceled"] {
        assert_eq!(
            decide((end, &Value::Null), &spec(), Some(&done), NOW),
            Step::Nothing
        );
    }
}

#[test]
fn cancel_ends_canceled_in_every_phase() {
    let mut s = spec();
    s.cancel = true;
    let canceled = |step: Step| matches!(step, Step::End(v) if v["phase"] == "Canceled");
    assert!(
        canceled(decide(("", &Value::Null), &s, None, NOW)),
        "before a job exists"
    );
    for p in [Phase::New, Phase::Assigned, Phase::InProgress] {
        assert_eq!(
            decide(("Accepted", &Value::Null), &s, Some(&job(p)), NOW),
            Step::CancelJob,
            "{p}"
        );
    }
    for p in [Phase::Canceled, Phase::Completed, Phase::Failed] {
        assert!(
            canceled(decide(("InProgress", &Value::Null), &s, Some(&job(p)), NOW)),
            "{p}"
        );
    }
    // Even a spec that is invalid ends Canceled, not Failed.
    s.source_pvc.clear();
    assert!(canceled(decide(("", &Value::Null), &s, None, NOW)));
}
