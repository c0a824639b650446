#!/usr/bin/env python3
"""Writes a directory tree as a one-layer container image archive.

    oci-archive.py ROOTFS OUT.tar NAME CONFIG.json

ROOTFS becomes the image's only layer; CONFIG.json holds the runtime part of
the image configuration (Entrypoint, Env, User, WorkingDir, Labels); NAME is
the full reference (registry/repository:tag). The archive is an OCI image
layout (oci-layout, index.json, blobs/sha256/...) that also carries Docker's
manifest.json, so `ctr images import`, `skopeo copy oci-archive:...` and
`docker load` all read it.

The output depends only on the input: entries are sorted, owned by root,
and dated SOURCE_DATE_EPOCH (0 when unset); gzip headers carry no time.
"""

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def layer_tar(rootfs):
    """The uncompressed layer: every path under rootfs, sorted, root-owned."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, rootfs)
            names = sorted(dirnames + filenames)
            if rel_dir != ".":
                add(tar, dirpath, rel_dir)
            for name in names:
                path = os.path.join(dirpath, name)
                # Directories are added when os.walk enters them (symlinks to
                # directories are not entered, so they are added here).
                if os.path.isdir(path) and not os.path.islink(path):
                    continue
                add(tar, path, os.path.normpath(os.path.join(rel_dir, name)))
    return buf.getvalue()


def add(tar, path, name):
    info = tar.gettarinfo(path, arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = EPOCH
    # The staging tree's own umask must not leak into the image: keep the
    # mode bits the staging script set, nothing else.
    info.mode = stat.S_IMODE(os.lstat(path).st_mode)
    info.pax_headers = {}
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(data):
    return "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: oci-archive.py ROOTFS OUT.tar NAME CONFIG.json")
    rootfs, out, name, config_path = sys.argv[1:]
    with open(config_path) as f:
        runtime = json.load(f)

    raw = layer_tar(rootfs)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as g:
        g.write(raw)
    layer = gz.getvalue()

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH))
    config = json.dumps({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [digest(raw)]},
        "history": [{"created": created, "created_by": "scripts/image.sh"}],
    }, sort_keys=True, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer), "size": len(layer)}],
    }, sort_keys=True, separators=(",", ":")).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest), "size": len(manifest),
            # containerd names the image after the first, the OCI layout
            # (skopeo's oci-archive:FILE:REF) after the second.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }, sort_keys=True, separators=(",", ":")).encode()
    docker_manifest = json.dumps([{
        "Config": blob(config), "RepoTags": [name], "Layers": [blob(layer)],
    }], separators=(",", ":")).encode()

    files = [
        ("blobs", None), ("blobs/sha256", None),
        (blob(config), config), (blob(layer), layer), (blob(manifest), manifest),
        ("index.json", index), ("manifest.json", docker_manifest),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    with tarfile.open(out + ".part", mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.mtime = EPOCH
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    os.replace(out + ".part", out)
    print("%s %s layer %d bytes (%d uncompressed) manifest %s"
          % (out, name, len(layer), len(raw), digest(manifest)), file=sys.stderr)


if __name__ == "__main__":
    main()
