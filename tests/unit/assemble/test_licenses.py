"""Debian copyright files into SPDX license expressions."""

from appliance.assemble import licenses

DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"


def test_the_files_star_paragraph_names_the_package_license():
    text = DEP5 + "Files: *\nLicense: LGPL-2.1+ or GPL-2+\n\nFiles: debian/*\nLicense: GPL-2+\n"
    assert licenses.from_copyright(text) == "LGPL-2.1-or-later OR GPL-2.0-or-later"  # debian/* is not shipped


def test_every_license_of_the_shipped_files_is_declared():
    """Issue 36: dpkg's SBOM license named one of the four its copyright file names."""
    text = DEP5 + ("Files: *\nLicense: GPL-2+\n\nFiles:\n lib/compat/md5.c\n lib/compat/md5.h\nLicense: public-domain-md5\n\n"
                   "Files: lib/compat/obstack.c\nLicense: LGPL-2.1+\n\nFiles: utils/*\nLicense: BSD-2-clause\n\n"
                   "Files: debian/*\nLicense: GPL-2+\n")
    assert licenses.from_copyright(text) == ("GPL-2.0-or-later AND LicenseRef-Debian-public-domain-md5 AND "
                                             "LGPL-2.1-or-later AND BSD-2-Clause")


def test_without_a_files_star_paragraph_every_license_counts():
    text = DEP5 + "Files: src/*\nLicense: Expat\n\nFiles: lib/*\nLicense: BSD-3-clause\n"
    assert licenses.from_copyright(text) == "MIT AND BSD-3-Clause"


def test_unknown_names_become_license_refs_and_prose_is_no_assertion():
    assert licenses.spdx_id("Unicode-data") == "LicenseRef-Debian-Unicode-data"
    assert licenses.spdx_id("GPL-3") == "GPL-3.0-only" and licenses.spdx_id("Apache-2.0") == "Apache-2.0"
    assert licenses.expression("GPL-3+ with GCC-exception-3.1") == "GPL-3.0-or-later WITH GCC-exception-3.1"
    assert licenses.expression("GPL-2+ with Unusual exception") == "LicenseRef-Debian-GPL-2-with-Unusual-exception"
    assert licenses.from_copyright("This package was debianized by ... under the GPL.") == "NOASSERTION"
    assert licenses.from_copyright(None) == "NOASSERTION"
    assert licenses.from_copyright(DEP5 + "Files: *\nCopyright: x\n") == "NOASSERTION"
