"""Container images read as the OCI image spec says: layouts and docker archives written
here as raw tar + JSON, layers with whiteouts and opaque folders, and the hostile ones."""

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from appliance.assemble import oci
from appliance.assemble.template import Template
from appliance.machines import Arch


def tar(entries: list[tuple]) -> bytes:
    """A layer: (name, body bytes) files, (name, None) folders, (name, "->", target) links."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry[0])
            info.mtime = 0
            if len(entry) == 3:
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
                archive.addfile(info)
            elif entry[1] is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(entry[1]), 0o755
                archive.addfile(info, io.BytesIO(entry[1]))
    return out.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layout(folder: Path, layers: list[bytes], config: dict, tag: str = "latest", platform_list: bool = False) -> Path:
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        (blobs / digest(data)[7:]).write_bytes(data)
        return digest(data)

    stored = [gzip.compress(layer, mtime=0) for layer in layers]
    config_bytes = json.dumps({"architecture": "amd64", "os": "linux", **config,
                               "rootfs": {"type": "layers", "diff_ids": [digest(x) for x in layers]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config_bytes), "size": len(config_bytes)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": put(x), "size": len(x)} for x in stored]}).encode()
    top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest), "size": len(manifest)}
    if platform_list:
        listing = json.dumps({"schemaVersion": 2, "manifests": [
            {**top, "platform": {"os": "linux", "architecture": "s390x"}}]}).encode()
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": put(listing), "size": len(listing)}
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**top, "annotations": {oci.REF_NAME: tag}}]}))
    return folder


BASE = tar([("bin", None), ("bin/app", b"app v1"), ("etc", None), ("etc/gone", b"x"), ("etc/keep", b"k"),
            ("var", None), ("var/cache", None), ("var/cache/old", b"o"), ("bin/sh", "->", "app")])
TOP = tar([("etc/.wh.gone", b""), ("var/cache/.wh..wh..opq", b""), ("var/cache/new", b"n"), ("bin/app", b"app v2")])
CONFIG = {"config": {"Entrypoint": ["app"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "MODE=fast"],
                     "WorkingDir": "/var", "User": "1000:1000"}}


def files(placed) -> dict[str, bytes]:
    return {p.entry.path: p.entry.data for p in placed}


def test_layers_apply_in_order_with_whiteouts_and_opaque_folders(tmp_path):
    image = oci.read_layout(layout(tmp_path / "img", [BASE, TOP], CONFIG), "latest", Arch.X86_64)
    placed = oci.apply(image)
    got = files(placed)
    assert got["bin/app"] == b"app v2" and "etc/gone" not in got and got["etc/keep"] == b"k"
    assert "var/cache/old" not in got and got["var/cache/new"] == b"n"  # opaque: nothing from below
    sources = {p.entry.path: p.source for p in placed}
    assert sources["bin/app"] == f"oci:{image.layers[1].digest}" and sources["etc/keep"] == f"oci:{image.layers[0].digest}"
    template = oci.running(Template("t"), image, placed)
    assert template.payload == ("/bin/app", "--serve")  # looked up on the image's PATH
    assert (template.env, template.workdir, template.user) == (("PATH=/bin", "MODE=fast"), "/var", "1000:1000")
    assert oci.running(Template("t", payload=("/bin/sh",)), image, placed).payload == ("/bin/sh",)


def test_a_docker_archive_of_the_same_image_gives_the_same_files(tmp_path):
    config = json.dumps({**CONFIG, "rootfs": {"type": "layers", "diff_ids": [digest(BASE), digest(TOP)]}}).encode()
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as out:
        for name, data in (("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["x:1"],
                                                         "Layers": ["a/layer.tar", "b/layer.tar"]}]).encode()),
                           ("config.json", config), ("a/layer.tar", BASE), ("b/layer.tar", TOP)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    from_archive = oci.apply(oci.read_docker_archive(archive))
    from_layout = oci.apply(oci.read_layout(layout(tmp_path / "img", [BASE, TOP], CONFIG), "latest", Arch.X86_64))
    assert [(p.entry.path, p.entry.data, p.entry.mode) for p in from_archive] == [
        (p.entry.path, p.entry.data, p.entry.mode) for p in from_layout]


def test_a_damaged_layer_is_refused_by_its_digest(tmp_path):
    folder = layout(tmp_path / "img", [BASE], CONFIG)
    top = json.loads((folder / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((folder / "blobs" / "sha256" / top[7:]).read_bytes())
    blob = folder / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    blob.write_bytes(blob.read_bytes()[:-3] + b"xyz")
    with pytest.raises(oci.ImageError, match=r"img:latest: layer 1 sha256:.* does not match its digest"):
        oci.read_layout(folder, "latest", Arch.X86_64)


@pytest.mark.parametrize("layers, message", [
    ([tar([("../etc/passwd", b"x")])], "leaves the image's root"),
    ([tar([("a", None), ("a/../../.wh.etc", b"")])], "leaves the image's root"),
    ([tar([("evil", "->", "/etc")]), tar([("evil/passwd", b"root::0:0")])], "through the symbolic link 'evil'"),
    ([tar([("bin", "->", "../../..")]), tar([("bin/.wh.x", b"")])], "whites out 'bin/x' through a symbolic link"),
])
def test_hostile_layers_are_one_line_naming_the_image_and_the_culprit(tmp_path, layers, message):
    image = oci.read_layout(layout(tmp_path / "img", layers, CONFIG), "latest", Arch.X86_64)
    with pytest.raises(oci.ImageError, match=f"image {tmp_path / 'img'}:latest: layer .*{message}"):
        oci.apply(image)


def test_missing_config_tag_platform_or_manifest_json_are_one_line(tmp_path):
    folder = layout(tmp_path / "img", [BASE], CONFIG)
    with pytest.raises(oci.ImageError, match="no manifest tagged 'v2' \\(tags: latest\\)"):
        oci.read_layout(folder, "v2", Arch.X86_64)
    listed = layout(tmp_path / "multi", [BASE], CONFIG, platform_list=True)
    with pytest.raises(oci.ImageError, match="manifest list has no linux/amd64 image \\(it has: linux/s390x\\)"):
        oci.read_layout(listed, "latest", Arch.X86_64)
    manifest = json.loads((folder / "index.json").read_text())["manifests"][0]
    body = json.loads((folder / "blobs" / "sha256" / manifest["digest"][7:]).read_bytes())
    (folder / "blobs" / "sha256" / body["config"]["digest"][7:]).unlink()
    with pytest.raises(oci.ImageError, match="config sha256:.* is missing"):
        oci.read_layout(folder, "latest", Arch.X86_64)
    bare = tmp_path / "bare.tar"
    with tarfile.open(bare, "w") as out:
        info = tarfile.TarInfo("config.json")
        out.addfile(info, io.BytesIO(b""))
    with pytest.raises(oci.ImageError, match="no manifest.json: not `docker save` output"):
        oci.read_docker_archive(bare)
    nameless = oci.Image("i", {"config": {"Cmd": ["/app"], "User": "nobody"}}, (), "d")
    with pytest.raises(oci.ImageError, match="User 'nobody' is a name"):
        oci.running(Template("t"), nameless, [])


def test_a_layer_that_expands_past_the_budget_is_refused_without_filling_memory(tmp_path):
    bomb = gzip.compress(b"\0" * (8 << 20), mtime=0)  # 8 MiB of zeros in about 8 KiB
    with pytest.raises(oci.ImageError, match="layer 1 expands to more than 1 MiB"):
        oci._uncompressed(bomb, "img", 0, limit=1 << 20)
    assert oci._uncompressed(bomb, "img", 0, limit=16 << 20) == b"\0" * (8 << 20)
    two = gzip.compress(b"a", mtime=0) + gzip.compress(b"b", mtime=0)  # members back to back, as gzip allows
    assert oci._uncompressed(two, "img", 0) == b"ab"
    with pytest.raises(oci.ImageError, match="cannot be decompressed"):
        oci._uncompressed(bomb[:100], "img", 0)


@pytest.mark.parametrize("config, message", [
    ({"Entrypoint": "/bin/sh -c app"}, "Entrypoint is str '/bin/sh -c app', not a list of strings"),
    ({"Cmd": 7}, "Cmd is int 7"),
    ({"Cmd": ["/app"], "Env": "A=1"}, "Env is str"),
    ({"Cmd": ["/app"], "User": "4294967296"}, "user '4294967296' is not UID or UID:GID"),
    ({"Cmd": ["/app"], "User": "1000:1000:0"}, "user '1000:1000:0' is not UID or UID:GID"),
    ({"Cmd": ["/app"], "User": 0}, "User is int"),
])
def test_image_configs_that_cannot_be_carried_are_refused_never_cut(config, message):
    with pytest.raises(oci.ImageError, match=message):
        oci.running(Template("t"), oci.Image("img", {"config": config}, (), "d"), [])


def test_a_real_images_long_env_and_command_are_carried_whole():
    from appliance.assemble import initramfs

    env = tuple(f"VAR_{i}=value {i}" for i in range(60))  # Debian's images carry dozens
    argv = ["/app", *(f"--flag-{i}" for i in range(100))]
    done = oci.running(Template("t"), oci.Image("img", {"config": {"Cmd": argv, "Env": list(env)}}, (), "d"), [])
    conf = initramfs.init_conf(done)
    assert conf.count("\nenv ") == 60 and conf.split("payload ")[1].split("\n")[0].count(" ") == 100
    from dataclasses import replace

    with pytest.raises(oci.TemplateError, match="the payload has 300 words; the init carries at most 255"):
        initramfs.init_conf(replace(done, payload=tuple(["/app"] * 300)))


@pytest.mark.parametrize("index, message", [
    ([], "index.json is a JSON list, not an object"),
    ({"manifests": "x"}, "index.json's manifests is not a list of descriptors"),
])
def test_odd_json_in_a_layout_is_one_line(tmp_path, index, message):
    folder = layout(tmp_path / "img", [BASE], CONFIG)
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(oci.ImageError, match=message):
        oci.read_layout(folder, "latest", Arch.X86_64)


def test_a_docker_archive_that_is_no_regular_file_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "fifo.tar"
    os.mkfifo(fifo)
    link = tmp_path / "zero.tar"
    link.symlink_to("/dev/zero")
    for path in (fifo, link, tmp_path):
        with pytest.raises(oci.ImageError, match="not a regular file"):
            oci.read_docker_archive(path)


def test_a_docker_archive_with_layers_as_a_string_is_one_line(tmp_path):
    archive = tmp_path / "img.tar"
    config = json.dumps({"rootfs": {"diff_ids": []}}).encode()
    with tarfile.open(archive, "w") as out:
        for name, body in (("manifest.json", json.dumps([{"Config": "c.json", "Layers": "layer.tar"}]).encode()),
                           ("c.json", config)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            out.addfile(info, io.BytesIO(body))
    with pytest.raises(oci.ImageError, match="Layers .* is not a list of strings"):
        oci.read_docker_archive(archive)


def test_a_root_filesystem_tar_is_an_image_of_one_layer_gzip_or_plain(tmp_path):
    """mmdebstrap's output (plain), or one compressed: the same files, no config."""
    layer = tar([("./", None), ("./etc/", None), ("./etc/os-release", b"ID=debian\n"), ("./bin", "->", "usr/bin")])
    for name, data in (("plain.tar", layer), ("packed.tar.gz", gzip.compress(layer))):
        (tmp_path / name).write_bytes(data)
        image = oci.load(name, "rootfs", tmp_path, Arch.X86_64)
        assert image.config == {} and len(image.layers) == 1
        assert files(oci.apply(image)) == {"etc": b"", "etc/os-release": b"ID=debian\n", "bin": b"usr/bin"}
    assert oci.signature(("rootfs", "plain.tar"), tmp_path).startswith("rootfs plain.tar ")


def test_a_root_filesystem_tar_that_is_no_regular_file_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.tar")
    for name in ("fifo.tar", "missing.tar"):
        with pytest.raises(oci.ImageError, match="not a regular file"):
            oci.load(name, "rootfs", tmp_path, Arch.X86_64)
    with open(tmp_path / "huge.tar", "wb") as huge:  # sparse: nothing is written, nothing is read
        huge.truncate(oci.MAX_LAYER + 1)
    with pytest.raises(oci.ImageError, match="more than the 1024 MiB"):
        oci.load("huge.tar", "rootfs", tmp_path, Arch.X86_64)
