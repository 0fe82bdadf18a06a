"""SBOM identifiers follow the SPDX spec for any input (issue 36: a template file named
`qu"o\\te é 日本.txt` put non-ASCII letters into SPDX IDs)."""

import re

from hypothesis import given
from hypothesis import strategies as st

from appliance.assemble import sbom

IDSTRING = re.compile(r"^[A-Za-z0-9.-]+$")  # SPDX 2.3, 3.2: SPDXRef-[idstring]


@given(st.lists(st.text(), min_size=1, max_size=3))
def test_any_name_makes_a_valid_spdx_idstring(parts):
    assert IDSTRING.match(sbom._ref(*parts))


def test_the_name_from_issue_36():
    assert sbom._ref("template", 'qu"o\\te é 日本.txt') == "template-qu-o-te-----.txt"
