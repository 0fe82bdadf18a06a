"""`appliance range`'s verb: a series it cannot build is refused before any boot."""

import pytest

from appliance.cli import main as cli


@pytest.mark.parametrize("extra, message", [
    (["--tags", "v1,v2"], "--tags names commits of a repository: give it with --git REPO"),
    ([], "range needs at least two kernels (images, --src trees or --git tags)"),
    (["--src", "/etc"], "KERNEL_SRC=/etc is not a Linux source tree"),
])
def test_range_refuses_a_series_it_cannot_build(tmp_path, capsys, extra, message):
    from tests.unit.test_bundle import make_bundle

    make_bundle(tmp_path)
    assert cli.main(["range", str(tmp_path), *extra, "--accel", "tcg"]) == 1
    assert f"error: {message}" in capsys.readouterr().err
