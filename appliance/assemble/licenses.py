"""A Debian package's license, read from its copyright file, as an SPDX expression.

Most packages write `/usr/share/doc/PKG/copyright` in Debian's machine-readable format
(DEP-5): paragraphs with `Files:` and `License:` fields, the short names Debian uses
(`GPL-2+`, `Expat`, `BSD-3-clause`). The package's declared license is every
paragraph's license together (AND), its `Files: *` paragraph's first, the packaging's own
`debian/*` paragraphs left out (those files are not in the package): a package whose
files come under four licenses declares all four (dpkg: GPL-2+, and three more for parts
of it), not just the main one. Short names SPDX knows are
translated; others become `LicenseRef-` identifiers, which SPDX and CycloneDX accept.
A file that is not machine-readable gives NOASSERTION: we do not guess from prose.
"""

from __future__ import annotations

import re

NOASSERTION = "NOASSERTION"
FORMAT_LINE = re.compile(r"^Format:\s*\S*copyright-format", re.M | re.I)

# Debian short names (lower case) -> SPDX identifiers; a trailing + is "or later".
_SPDX = {
    "gpl-1": "GPL-1.0", "gpl-2": "GPL-2.0", "gpl-3": "GPL-3.0", "lgpl-2": "LGPL-2.0", "lgpl-2.1": "LGPL-2.1",
    "lgpl-3": "LGPL-3.0", "agpl-3": "AGPL-3.0", "gfdl-1.2": "GFDL-1.2", "gfdl-1.3": "GFDL-1.3",
    "apache-2.0": "Apache-2.0", "expat": "MIT", "mit": "MIT", "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause", "isc": "ISC", "zlib": "Zlib",
    "psf-2": "PSF-2.0", "python-2.0": "Python-2.0", "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0",
    "artistic": "Artistic-1.0-Perl", "curl": "curl", "openssl": "OpenSSL", "ssleay": "SSLeay",
    "cc0-1.0": "CC0-1.0", "unicode-dfs-2016": "Unicode-DFS-2016", "x11": "X11", "bsl-1.0": "BSL-1.0",
    "lgpl-2.0": "LGPL-2.0", "gpl-2.0": "GPL-2.0", "gpl-3.0": "GPL-3.0", "lgpl-2.1+": "LGPL-2.1",
}
_EXCEPTIONS = {"gcc-exception-3.1": "GCC-exception-3.1", "gcc-exception-2.0": "GCC-exception-2.0",
               "autoconf-exception-2.0": "Autoconf-exception-2.0", "bison-exception-2.2": "Bison-exception-2.2",
               "classpath-exception-2.0": "Classpath-exception-2.0", "font-exception-2.0": "Font-exception-2.0",
               "llvm-exception": "LLVM-exception", "openssl": "openvpn-openssl-exception"}
_FAMILIES_WITH_ONLY = ("GPL-", "LGPL-", "AGPL-", "GFDL-")  # SPDX 3 ids: -only / -or-later


def spdx_id(short: str) -> str:
    """One Debian short name as an SPDX identifier (or a LicenseRef- one)."""
    name = short.strip()
    later = name.endswith("+")
    base = _SPDX.get(name.rstrip("+").lower()) or _SPDX.get(name.lower())
    if base is None:
        return "LicenseRef-Debian-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "unnamed")
    if base.startswith(_FAMILIES_WITH_ONLY):
        return f"{base}-or-later" if later else f"{base}-only"
    return f"{base}+" if later else base  # SPDX's "+": this version or any later one


def expression(field: str) -> str:
    """A License: field's first line (`GPL-2+ or Artistic`, `LGPL-2.1+ and GPL-2+`, with
    optional `with X exception`) as an SPDX expression."""
    words = re.split(r"\s+(or|and|\|)\s+", field.strip(), flags=re.I)
    out = []
    for word in words:
        lowered = word.lower()
        if lowered in ("or", "|"):
            out.append("OR")
        elif lowered == "and":
            out.append("AND")
        else:
            match = re.match(r"^(.*?)\s+with\s+(.*)$", word, re.I)
            name, exception = (match[1], match[2]) if match else (word, "")
            known = _EXCEPTIONS.get(re.sub(r"\s+exception$", "", exception.strip(), flags=re.I).lower())
            if exception and known:
                out.append(f"{spdx_id(name)} WITH {known}")
            elif exception:  # SPDX 2.3 allows only listed exceptions after WITH: the whole phrase is one name
                out.append(spdx_id(f"{name} with {exception}"))
            else:
                out.append(spdx_id(name.replace(",", "")))
    return " ".join(out)


def _paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last:
                if last == "files":  # a Files: field may list its patterns on the lines after it
                    fields["files"] = f"{fields['files']} {line.strip()}".strip()
                continue  # other continuation lines: license text, not its name
            key, sep, value = line.partition(":")
            if sep and key and " " not in key:
                last = key.strip().lower()
                fields[last] = value.strip()
        if fields:
            paragraphs.append(fields)
    return paragraphs


def from_copyright(text: str | None) -> str:
    """The package's license from its copyright file's TEXT (None: the file is absent)."""
    if not text or not FORMAT_LINE.search(text):
        return NOASSERTION
    paragraphs = [p for p in _paragraphs(text) if "files" in p and p.get("license")]
    if not paragraphs:
        return NOASSERTION
    # the packaging's own files (debian/*) are not in the binary package: their license is not its
    shipped = [p for p in paragraphs if not all(f.startswith("debian/") for f in p["files"].split())] or paragraphs
    main = [p for p in shipped if p["files"].split() and p["files"].split()[0] == "*"]
    chosen = main + [p for p in shipped if p not in main]
    parts = list(dict.fromkeys(expression(p["license"]) for p in chosen))
    return parts[0] if len(parts) == 1 else " AND ".join(f"({p})" if " " in p else p for p in parts)
