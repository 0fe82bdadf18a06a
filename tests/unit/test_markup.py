"""User text in the markups we write: XML that parsers accept whatever the input, and
Markdown that cannot be made to carry markup of its own."""

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from appliance import markup


@given(st.text())
def test_any_text_becomes_well_formed_xml(text):
    ET.fromstring(f'<svg a="{markup.xml(text)}"><text>{markup.xml(text)}</text></svg>')


def test_control_characters_go_and_the_rest_is_escaped():
    assert markup.xml('a\x01b\x1b[31m<&>"') == "ab[31m&lt;&amp;&gt;&quot;"
    assert markup.clean("tab\tnew\nline\x7f\x85") == "tab\tnew\nline"


def test_markdown_text_is_one_inert_line():
    hostile = "# Heading\n<img src=x onerror=alert(1)> | [link](http://x) `code` *bold*"
    said = markup.markdown(hostile)
    assert "\n" not in said and not said.startswith("#")
    assert not any(c in said for c in "<>|[]`*")
    assert markup.markdown("to_init pr1") == "to_init pr1"  # names keep their underscores
