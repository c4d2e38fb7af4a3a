"""The CLI: every command documented and with --help; an end-to-end run on a tiny dataset."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ddb_core.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _leaf_commands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaf_commands(sub, prefix + (name,))
            return
    yield " ".join(prefix)


def test_every_command_is_listed_and_documented_in_the_readme():
    from ddb_core.cli import ORDER
    from ddb_core.cli.common import TABLE

    assert set(TABLE) == set(ORDER) and len(ORDER) == len(set(ORDER)), set(TABLE) ^ set(ORDER)  # the one dispatch list
    leaves = set(_leaf_commands(build_parser()))
    assert leaves == set(COMMANDS)
    readme = (ROOT / "README.md").read_text()
    for cmd in COMMANDS:
        assert re.search(rf"ddb {re.escape(cmd)}\b", readme), f"`ddb {cmd}` is not documented in README.md"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd.split() + ["--help"])
    assert e.value.code == 0
    assert "usage: ddb " + cmd in capsys.readouterr().out


@pytest.mark.parametrize("group", ["", *sorted({c.split()[0] for c in COMMANDS if " " in c})])
def test_every_group_lists_its_commands(group, capsys):
    """`ddb --help` and `ddb GROUP --help` list the commands with their help (a `%` in a help text once broke
    `ddb bench --help`: argparse reads it as a format)."""
    with pytest.raises(SystemExit) as e:
        main(([group] if group else []) + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    leaves = [c for c in COMMANDS if (c.split()[0] == group and " " in c) or (not group and " " not in c)]
    assert leaves and all(c.split()[-1] in out for c in leaves), out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "ddb_core", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "demo-data" in out.stdout


def test_end_to_end_on_a_tiny_dataset(tmp_path, capsys):
    data, proj = tmp_path / "data", tmp_path / "proj"
    assert main(["demo-data", "--out", str(data), "--image-size", "32", "--n-train", "40", "--n-val", "12",
                 "--n-test", "12", "--workers", "1"]) == 0
    assert (data / "metadata.csv").exists()
    assert main(["init", "-p", str(proj), "--format", "waterbirds", "--source", str(data)]) == 0
    assert "imported 64 samples" in capsys.readouterr().out
    assert main(["erm", "train", "-p", str(proj), "--epochs", "1", "--image-size", "32", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "worst-group accuracy" in out and "| landbird/water |" in out
    assert main(["erm", "eval", "-p", str(proj)]) == 0
    assert "train group shares" in capsys.readouterr().out
    assert main(["status", "-p", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "active ERM model: 1" in out and "train: 40 samples" in out


def test_errors_are_one_message_and_exit_code_2(tmp_path, capsys):
    assert main(["status", "-p", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no project at") and "Traceback" not in err
    assert main(["init", "-p", str(tmp_path / "x"), "--format", "waterbirds", "--source", str(tmp_path)]) == 2
    assert "metadata.csv not found" in capsys.readouterr().err


def test_generation_commands_through_a_saved_model_folder(scored_project, tiny_pipe_factory, tmp_path, capsys,
                                                          monkeypatch):
    import json

    model_dir = tmp_path / "tiny-inpainting"
    tiny_pipe_factory().save_pretrained(model_dir)
    p = ["-p", str(scored_project.root)]
    assert main(["select", *p, "--k", "1", "3", "--ti-size", "2"]) == 0  # one count per class
    out = capsys.readouterr().out
    assert "landbird: 1 source images" in out and "waterbird: 3 source images" in out
    assert main(["select", *p, "--k-total", "5", "--ti-size", "2"]) == 0  # balanced over the classes
    assert "landbird: 3 source images" in capsys.readouterr().out
    assert main(["select", *p, "--k", "1", "2", "3"]) == 2 and "3 counts for 2 classes" in capsys.readouterr().err
    assert main(["select", *p, "--k", "2", "--k-total", "5"]) == 2 and "not both" in capsys.readouterr().err
    assert main(["select", *p, "--k", "2", "--ti-size", "2"]) == 0
    assert "Psi =" in capsys.readouterr().out
    assert main(["invert", *p, "--model", str(model_dir), "--steps", "2", "--batch-size", "2"]) == 0
    assert "<waterbird> -> tokens/" in capsys.readouterr().out
    assert main(["generate", *p, "--model", str(model_dir), "--masker", "grabcut", "--steps", "2", "--batch-size", "2"]) == 0
    assert "0->1: 2 candidates from 2 sources" in capsys.readouterr().out
    assert main(["score", *p, "--n-steps", "4"]) == 0
    assert "scored 4 candidates" in capsys.readouterr().out
    assert main(["prune", *p, "--Psi", "0=1.001", "1=1.001", "--P", "0=-1e9", "1=-1e9"]) == 0
    out = capsys.readouterr().out
    assert "landbird -> waterbird: 2 candidates, 2 scored, 2 kept by the thresholds" in out
    assert main(["prune", *p, "--P", "0=oops"]) == 2
    assert "expects CLASS=VALUE" in capsys.readouterr().err
    # the audit log names who changed the thresholds: --who, else $USER (it once said "user")
    monkeypatch.setenv("USER", "carol")
    assert main(["prune", *p, "--Psi", "0=0.5"]) == 0
    assert main(["prune", *p, "--P", "1=0.1", "--who", "dave"]) == 0
    who = [r[0] for r in scored_project.db.execute("select who from actions where kind = 'thresholds' order by id")]
    assert who[-2:] == ["carol", "dave"]
    capsys.readouterr()

    config = tmp_path / "run.json"
    config.write_text(json.dumps({"selection": {"k": 3, "ti_size": 2}, "inversion": {"steps": 1, "batch_size": 1},
                                  "inpaint": {"model": str(model_dir), "steps": 2, "batch_size": 3},
                                  "masker": {"name": "provided"}, "scoring": {"n_steps": 4}, "pairs": ["0:1"]}))
    other = scored_project.db.execute("select count(*) from candidates where source_label = 1").fetchone()[0]
    assert main(["run", *p, "--config", str(config)]) == 0
    assert "landbird -> waterbird: 5 candidates, 5 scored" in capsys.readouterr().out  # 2 with grabcut masks + 3 provided
    # the README's `pairs` section: only the directions it names are generated
    assert scored_project.db.execute("select count(*) from candidates where source_label = 1").fetchone()[0] == other
    config.write_text(json.dumps({"selection": {"k": 3}, "bogus": {}}))
    assert main(["run", *p, "--config", str(config)]) == 2
    assert "unknown section(s) bogus" in capsys.readouterr().err
