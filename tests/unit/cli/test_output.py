"""The one printer: text at once for a person, or with --json one document at the end
holding every verb's data, dicts given twice merged."""

import json

from appliance.cli import output


def test_text_is_printed_at_once_without_json(capsys):
    output.start(as_json=False)
    output.say("a table", rows=[1])
    assert capsys.readouterr().out == "a table\n"
    output.finish()
    assert capsys.readouterr().out == ""


def test_with_json_the_data_of_every_say_is_one_document(capsys):
    output.start(as_json=True)
    output.say("summary", summary={"n": 3})
    output.say("svg: x.svg", outputs={"svg": "x.svg"})
    output.say("trace: t.json", outputs={"chrome": "t.json"})
    output.say(None, note="no text")
    assert capsys.readouterr().out == ""
    output.finish()
    assert json.loads(capsys.readouterr().out) == {"summary": {"n": 3}, "outputs": {"svg": "x.svg", "chrome": "t.json"},
                                                   "note": "no text"}
    output.start(as_json=False)


def test_the_results_file_a_verb_writes_is_remembered_until_the_next_verb(tmp_path):
    output.start(as_json=False)
    assert output.results_file() is None
    output.writes_results(tmp_path / "r.json")
    assert output.results_file() == tmp_path / "r.json"
    output.start(as_json=False)
    assert output.results_file() is None
