"""compare's resume, checked before any boot: a file that is not there, a compare that
asked another question, and boots of another build are each one line."""

import pytest

from appliance import results
from appliance.boot import hostfacts
from appliance.boot.accel import AccelChoice
from appliance.errors import ApplianceError
from appliance.machines import Accel
from appliance.runs import ab, bench, compare
from tests.unit.runs.test_compare import fake_run
from tests.unit.runs.test_costboots import cpio_bundle

TCG = AccelChoice(Accel.TCG, "test")


def partial_compare(path, target, append_b):
    host = hostfacts.collect(target.arch)  # as the resumed run will find it
    sides = []
    for _ in range(2):
        session = bench.Session(target, TCG, bench.Plan(n=4))
        session.runs = [fake_run(0, 5000, 20, warmup=True), fake_run(1, 4000, 20)]
        sides.append(session.document(False, host))
    result = compare.compare(sides[0]["runs"], sides[1]["runs"])
    results.write(path, results.comparison(sides[0], sides[1], result, complete=False, append_b=append_b))


def test_a_resume_without_its_file_or_of_another_question_is_refused_before_booting(tmp_path):
    target = cpio_bundle(tmp_path / "b")
    out = tmp_path / "compare.json"
    question = ab.Question(append_b="quiet")
    with pytest.raises(ApplianceError, match="does not exist: nothing to continue"):
        ab.compare_bundles(target, target, TCG, bench.Plan(n=4), question=question, out=out, resumed=True)
    partial_compare(out, target, append_b="initcall_debug")
    with pytest.raises(ApplianceError, match="compared B with 'initcall_debug' added: give the same --append-b"):
        ab.compare_bundles(target, target, TCG, bench.Plan(n=4), question=question, out=out, resumed=True)


def test_a_resume_of_another_builds_boots_is_refused(tmp_path):
    out = tmp_path / "compare.json"
    partial_compare(out, cpio_bundle(tmp_path / "old"), append_b="")
    other = cpio_bundle(tmp_path / "new", payload=b"rebuilt")
    with pytest.raises(ApplianceError, match="holds boots of another build"):
        ab.compare_bundles(other, other, TCG, bench.Plan(n=4), question=ab.Question(), out=out, resumed=True)
