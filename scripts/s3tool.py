"""An S3 oracle for the archival-storage tests, independent of cairn.

    python scripts/s3tool.py classes  ENDPOINT BUCKET PREFIX
    python scripts/s3tool.py head     ENDPOINT BUCKET KEY
    python scripts/s3tool.py versions ENDPOINT BUCKET PREFIX
    python scripts/s3tool.py attack   ENDPOINT BUCKET PREFIX

Run with the python of scripts/install-moto.sh's venv (it needs boto3);
credentials come from the environment. Prints one JSON document:

    classes   {key: storage class} of every current object under PREFIX
              (STANDARD where S3 names none)
    head      {storage_class, restore, retention_mode, retain_until,
               legal_hold, version_id} of KEY (null where S3 says nothing)
    versions  [{key, version_id, is_latest, is_delete_marker}] of every
              version and delete marker under PREFIX
    attack    what ransomware with delete rights achieves under PREFIX:
              {deleted_versions, refused_versions, delete_markers_created,
               errors: [first few messages]}; deleted_versions counts data
              versions destroyed (by id, or by a plain delete on an
              unversioned bucket), refused_versions every delete refused
"""

import json
import sys

import boto3
from botocore.exceptions import ClientError


def client(endpoint):
    # The tests' region, whatever AWS_REGION says (Garage's is "garage").
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def pages(s3, operation, **kwargs):
    return s3.get_paginator(operation).paginate(**kwargs)


def classes(s3, bucket, prefix):
    return {
        o["Key"]: o.get("StorageClass") or "STANDARD"
        for page in pages(s3, "list_objects_v2", Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    }


def head(s3, bucket, key):
    h = s3.head_object(Bucket=bucket, Key=key)
    until = h.get("ObjectLockRetainUntilDate")
    return {
        "storage_class": h.get("StorageClass") or "STANDARD",
        "restore": h.get("Restore"),
        "retention_mode": h.get("ObjectLockMode"),
        "retain_until": until.isoformat() if until else None,
        "legal_hold": h.get("ObjectLockLegalHoldStatus"),
        "version_id": h.get("VersionId"),
    }


def versions(s3, bucket, prefix):
    out = []
    for page in pages(s3, "list_object_versions", Bucket=bucket, Prefix=prefix):
        for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
            out += [{
                "key": v["Key"],
                "version_id": v.get("VersionId"),
                "is_latest": v.get("IsLatest", False),
                "is_delete_marker": marker,
            } for v in page.get(kind, [])]
    return out


def attack(s3, bucket, prefix):
    report = {"deleted_versions": 0, "refused_versions": 0,
              "delete_markers_created": 0, "errors": []}

    def refused(e):
        report["refused_versions"] += 1
        if len(report["errors"]) < 5:
            report["errors"].append(str(e))

    # First the plain deletes a careless or hostile client makes: on a
    # versioned bucket each one only hides the object behind a delete
    # marker; on an unversioned one it destroys the only version.
    for key in list(classes(s3, bucket, prefix)):
        try:
            r = s3.delete_object(Bucket=bucket, Key=key)
        except ClientError as e:
            refused(e)
            continue
        report["delete_markers_created" if r.get("DeleteMarker") else "deleted_versions"] += 1
    # Then every version by id, which is what really destroys data, with
    # the governance bypass an attacker holding full rights would use.
    # Delete markers are left alone: removing one would only bring data back.
    for v in versions(s3, bucket, prefix):
        if v["is_delete_marker"]:
            continue
        try:
            s3.delete_object(Bucket=bucket, Key=v["key"], VersionId=v["version_id"],
                             BypassGovernanceRetention=True)
            report["deleted_versions"] += 1
        except ClientError as e:
            refused(e)
    return report


def main():
    commands = {"classes": classes, "head": head, "versions": versions, "attack": attack}
    if len(sys.argv) != 5 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    command, endpoint, bucket, arg = sys.argv[1:]
    json.dump(commands[command](client(endpoint), bucket, arg), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
