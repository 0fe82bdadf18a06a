"""What a bundle holds, as an SBOM: SPDX 2.3 JSON and CycloneDX 1.5 JSON.

One inventory, two writers. The inventory comes from the bundle itself, so a release
unpacked on another machine gives the same answer: every Debian package (name, version,
architecture, purl, the .deb's sha256, the license its copyright file declared, read at
build time before the docs were excluded), every host program and host file with its
path and digests (hashed from the initrd's own bytes), the kernel (its Debian package,
or the minimal kernel's source) and each module, our own programs (the init, profiled,
payload programs), a container image's layers and the template's files. The document's time is the build's
SOURCE_DATE_EPOCH and its identifiers derive from the bundle's digest, so the same
bundle always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from appliance import __version__
from appliance.assemble import cpio
from appliance.bundle import Bundle

NOASSERTION = "NOASSERTION"


@dataclass(frozen=True)
class File:
    path: str  # in the appliance, without the leading /
    sha1: str
    sha256: str
    size: int


@dataclass
class Component:
    """One part of the appliance: a package, a program set, the kernel."""

    ref: str  # unique in the document, made of [A-Za-z0-9.-]
    name: str
    version: str
    kind: str  # debian, host, kernel, module, oci, program, template
    purl: str | None = None
    license: str = NOASSERTION
    sha256: str | None = None  # of what it came as (a .deb)
    files: list[File] = field(default_factory=list)
    supplier: str | None = None


TOOL_SUPPLIER = "Organization: appliance"  # the init and the guest programs this tool compiles


def _ref(*parts: str) -> str:
    """An SPDX identifier's tail for PARTS: ASCII letters, digits, '.' and '-' only (the
    spec's idstring; str.isalnum() also passed é and 日本 through), never empty."""
    text = "-".join(parts)
    return "".join(c if (c.isascii() and c.isalnum()) or c in ".-" else "-" for c in text) or "unnamed"


def deb_purl(name: str, version: str, arch: str | None) -> str:
    """The package URL of a Debian package (the version's epoch colon and + escaped)."""
    return f"pkg:deb/debian/{name}@{quote(version, safe='')}" + (f"?arch={arch}" if arch else "")


def _files_by_source(bundle: Bundle) -> dict[str, list[File]]:
    """The initrd's files grouped by the source the manifest names for each."""
    data = {e.path.lstrip("/"): e.data for e in cpio.read_initrd(bundle.initrd.read_bytes())
            if e.kind == "file"}
    out: dict[str, list[File]] = {}
    for item in bundle.contents:
        path = item["path"].lstrip("/")
        body = data.get(path)
        if item.get("in", "initrd") != "initrd" or body is None or item.get("kind", "file") != "file":
            continue
        out.setdefault(item["source"], []).append(File(path, hashlib.sha1(body).hexdigest(),  # noqa: S324 - SPDX asks for it
                                                       hashlib.sha256(body).hexdigest(), len(body)))
    return out


def inventory(bundle: Bundle) -> list[Component]:
    """Every component of BUNDLE, Debian packages first (in the lock's order)."""
    files = _files_by_source(bundle)
    sources = list(dict.fromkeys(item["source"] for item in bundle.contents))
    out: list[Component] = []
    recorded = {p["name"]: p for p in bundle.build.get("packages", [])}
    # every package the build unpacked (its lock), also one whose files were all left out
    # (gcc-12-base: only its documentation), then any the contents name besides
    debian = {f"debian {p['name']}={p.get('version', '')}": p for p in bundle.build.get("packages", [])}
    for source in dict.fromkeys([*debian, *(s for s in sources if s.startswith("debian "))]):
        name, _, version = source.removeprefix("debian ").partition("=")
        facts = recorded.get(name, {})
        out.append(Component(_ref("deb", name), name, version, "debian", deb_purl(name, version, facts.get("arch")),
                             facts.get("license", NOASSERTION), facts.get("sha256"), files.get(source, []),
                             "Organization: Debian"))
    kernel = _kernel(bundle)
    out.append(kernel)
    for source in sources:
        if source.startswith("debian "):
            continue
        kind, _, what = source.partition(" ")
        if source.startswith("oci:"):  # a container image's layer, by its digest
            layer = source.removeprefix("oci:")
            out.append(Component(_ref("oci", layer), f"oci layer {layer}", layer.removeprefix("sha256:")[:12], "oci",
                                 sha256=layer.removeprefix("sha256:"), files=files.get(source, []),
                                 supplier="Organization: the publisher of the container image"))
        elif kind == "kernel":  # "kernel module NAME"
            name = what.removeprefix("module ")
            out.append(Component(_ref("module", name), name, bundle.kernel_release, "module",
                                 files=files.get(source, []), supplier=kernel.supplier))
        elif kind in ("host", "host_files"):
            out.append(Component(_ref("host", what), what, "host", "host", files=files.get(source, []),
                                 supplier="Organization: the distribution of the build host"))
        else:  # the init and our programs (this tool's), the template's own files (its author's)
            ours = kind in ("init", "program")
            out.append(Component(_ref(kind, what or kind), source, __version__ if ours else "",
                                 "program" if ours else "template", files=files.get(source, []),
                                 supplier=TOOL_SUPPLIER if ours else f"Organization: the author of template "
                                                                       f"{bundle.name}"))
    seen: dict[str, int] = {}
    for part in out:  # two sources that differ only in characters a reference cannot hold
        seen[part.ref] = seen.get(part.ref, 0) + 1
        if seen[part.ref] > 1:
            part.ref = f"{part.ref}-{seen[part.ref]}"
    return out


def _kernel(bundle: Bundle) -> Component:
    facts = bundle.kernel_facts
    lock = facts.get("lock") or {}
    if lock.get("package"):  # Debian's kernel, pinned in debian.lock
        return Component(_ref("kernel", lock["package"]), lock["package"], lock.get("version", bundle.kernel_release),
                         "kernel", deb_purl(lock["package"], lock.get("version", ""), lock.get("arch")), "GPL-2.0-only",
                         lock.get("deb_sha256"), supplier="Organization: Debian")
    return Component(_ref("kernel", bundle.kernel_release), "linux", bundle.kernel_release, "kernel",
                     license="GPL-2.0-only", sha256=hashlib.sha256(bundle.kernel.read_bytes()).hexdigest(),
                     supplier=TOOL_SUPPLIER)  # the minimal kernel, or the user's, built here


def _created(bundle: Bundle) -> str:
    epoch = int(bundle.build.get("source_date_epoch") or 0)
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spdx(bundle: Bundle, parts: list[Component]) -> dict[str, Any]:
    """SPDX 2.3 JSON: the appliance as the described package, containing each part;
    files (with the SHA1 SPDX requires, and SHA256) for what came as files."""
    root = "SPDXRef-appliance"
    packages: list[dict[str, Any]] = [{
        "SPDXID": root, "name": bundle.name, "versionInfo": bundle.digest[:12], "downloadLocation": NOASSERTION,
        "supplier": f"Organization: the builder of appliance {bundle.name}",
        "filesAnalyzed": False, "primaryPackagePurpose": "OPERATING-SYSTEM", "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION}]
    files: list[dict[str, Any]] = []
    relations = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": root}]
    for part in parts:
        ident = f"SPDXRef-{part.ref}"
        package: dict[str, Any] = {
            "SPDXID": ident, "name": part.name, "versionInfo": part.version or NOASSERTION,
            "downloadLocation": NOASSERTION, "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
            "licenseDeclared": part.license, "copyrightText": NOASSERTION,
            "primaryPackagePurpose": {"kernel": "OPERATING-SYSTEM", "module": "LIBRARY", "debian": "LIBRARY"}.get(
                part.kind, "APPLICATION" if part.kind in ("program", "host") else "FILE")}
        if part.supplier:
            package["supplier"] = part.supplier
        if part.purl:
            package["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                        "referenceLocator": part.purl}]
        if part.sha256:
            package["checksums"] = [{"algorithm": "SHA256", "checksumValue": part.sha256}]
        packages.append(package)
        relations.append({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": ident})
        if part.kind == "debian" or not part.files:
            continue  # a package's files are named by its purl, not listed one by one
        # files listed: SPDX wants them analysed, with the verification code over their SHA1s
        package["filesAnalyzed"] = True
        package["packageVerificationCode"] = {"packageVerificationCodeValue": hashlib.sha1(  # noqa: S324 - SPDX's
            "".join(sorted(item.sha1 for item in part.files)).encode()).hexdigest()}
        package["hasFiles"] = [f"SPDXRef-File-{part.ref}-{n}" for n in range(len(part.files))]
        for number, item in enumerate(part.files):
            file_id = f"SPDXRef-File-{part.ref}-{number}"
            files.append({"SPDXID": file_id, "fileName": f"./{item.path}", "licenseConcluded": NOASSERTION,
                          "copyrightText": NOASSERTION,
                          "checksums": [{"algorithm": "SHA1", "checksumValue": item.sha1},
                                        {"algorithm": "SHA256", "checksumValue": item.sha256}]})
            relations.append({"spdxElementId": ident, "relationshipType": "CONTAINS", "relatedSpdxElement": file_id})
    refs = sorted({ref for part in parts for ref in re.findall(r"LicenseRef-[A-Za-z0-9.-]+", part.license)})
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"appliance {bundle.name}",
        "documentNamespace": f"https://appliance.invalid/spdx/{bundle.name}/{bundle.digest}",
        "creationInfo": {"created": _created(bundle), "creators": [f"Tool: appliance-{__version__}"]},
        "documentDescribes": [root], "packages": packages, "files": files, "relationships": relations,
        # SPDX wants every LicenseRef explained: these are names Debian's copyright files use
        "hasExtractedLicensingInfos": [
            {"licenseId": ref, "name": ref.removeprefix("LicenseRef-Debian-"),
             "extractedText": f"The license a Debian package's copyright file names "
                              f"{ref.removeprefix('LicenseRef-Debian-')!r}; its text is in that file "
                              "(/usr/share/doc/PACKAGE/copyright in the package)."} for ref in refs],
    }


def cyclonedx(bundle: Bundle, parts: list[Component]) -> dict[str, Any]:
    """CycloneDX 1.5 JSON: the appliance as the BOM's subject, each part a component,
    what came as files nested under it as file components with hashes."""
    components = []
    for part in parts:
        component: dict[str, Any] = {
            "type": {"kernel": "operating-system", "debian": "library", "module": "device-driver"}.get(
                part.kind, "application" if part.kind in ("program", "host") else "file"),
            "bom-ref": part.ref, "name": part.name}
        if part.version:
            component["version"] = part.version
        if part.supplier:
            component["supplier"] = {"name": part.supplier.removeprefix("Organization: ")}
        if part.purl:
            component["purl"] = part.purl
        if part.license != NOASSERTION:
            component["licenses"] = [{"expression": part.license}]
        if part.sha256:
            component["hashes"] = [{"alg": "SHA-256", "content": part.sha256}]
        if part.files and part.kind != "debian":
            component["components"] = [
                {"type": "file", "bom-ref": f"{part.ref}/{item.path}", "name": item.path,
                 "hashes": [{"alg": "SHA-1", "content": item.sha1}, {"alg": "SHA-256", "content": item.sha256}]}
                for item in part.files]
        components.append(component)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'appliance:' + bundle.digest)}", "version": 1,
        "metadata": {"timestamp": _created(bundle),
                     "tools": {"components": [{"type": "application", "name": "appliance", "version": __version__}]},
                     "component": {"type": "operating-system", "bom-ref": "appliance", "name": bundle.name,
                                   "version": bundle.digest[:12]}},
        "components": components,
        "dependencies": [{"ref": "appliance", "dependsOn": [part.ref for part in parts]}],
    }


FORMATS = {"spdx": spdx, "cyclonedx": cyclonedx}
