"""`spanner eval` measures what it says it measures, on a tiny dev set with known answers."""

from __future__ import annotations

from conftest import ROOT, run_cli, write_config


def test_spanner_eval_counts_risk_followups_summaries_and_literature(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "spanner.toml", data_dir, model_path)
    result = run_cli(["eval", "--config", str(cfg), "--cases", str(ROOT / "tests" / "fixtures" / "eval_cases"),
                      "--detail"], timeout=600)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "urgent recall           1/1 (100 %)" in out
    assert "hard negatives flagged  0/1 (0 %)" in out
    assert "re-asks                 0" in out and "unknown names or orgs   0" in out
    assert "words not in the person's text 0" in out
    assert "latency" in out and "theme overlap" in out


def test_a_malformed_dev_set_is_named_in_one_line(tmp_path, data_dir, model_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "bad.toml").write_text('[[cases]]\nid = "x1"\nkind = "nonsense"\n')
    cfg = write_config(tmp_path / "spanner.toml", data_dir, model_path)
    result = run_cli(["eval", "--config", str(cfg), "--cases", str(cases)])
    err = result.stderr.decode()
    assert result.returncode == 2 and "bad.toml" in err and "x1" in err and "Traceback" not in err
