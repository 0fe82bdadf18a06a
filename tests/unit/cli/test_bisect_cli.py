"""bisect's command line: a build command that cannot be split, and a failed bisect that
leaves no empty results folder behind (issue 36)."""

import subprocess

from appliance.cli import main as cli


def git_history(repo):
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for n in range(3):
        (repo / "f").write_text(str(n))
        subprocess.run(["git", "-C", str(repo), "add", "f"], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", str(n)],
                       check=True)
    return subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.split()


def test_an_unclosed_quote_is_one_line(capsys):
    assert cli.main(["bisect", "--good", "a", "--bad", "b", "--build-cmd", "make 'x {out}", "--accel", "tcg"]) == 1
    assert "cannot be split into words" in capsys.readouterr().err


def test_a_failed_bisect_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    commits = git_history(tmp_path / "repo")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    code = cli.main(["bisect", "--repo", str(tmp_path / "repo"), "--good", commits[0], "--bad", commits[-1],
                     "--build-cmd", "false {commit} {out}", "--accel", "tcg", "--no-record"])
    assert code == 1 and "the build of" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == []
