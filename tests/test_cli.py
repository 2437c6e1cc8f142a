"""The command line a newcomer meets: --version, help for every argument, `list` within 100
columns in the flavor's own argument names, a short `show`, "did you mean", argument checks,
`optforge docs`."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import optforge
from optforge import cli


def optforge_cli(*args):
    return subprocess.run([sys.executable, "-m", "optforge", *args], capture_output=True, text=True)


def run(capsys, *argv):
    """main() in this process: (exit status, stdout, stderr); argparse's exits give their status."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:
        status = exit_.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.strip() == f"optforge {optforge.__version__}"


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_argument_of_every_command_has_help(monkeypatch):
    seen = {}
    real = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args",
                        lambda self, argv=None: seen.setdefault("parser", self) and sys.exit(0))
    with pytest.raises(SystemExit):
        cli.main(["list"])
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", real)
    commands = _subparsers(seen["parser"])
    assert {"generate", "list", "show", "new", "check", "demo", "bench", "docs"} <= set(commands)
    missing = [f"{name} {action.dest}" for name, parser in commands.items() for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


@pytest.mark.parametrize("flavor", [None, "mxnet2", "mxnet1", "torch"])
@pytest.mark.parametrize("long", [False, True])
def test_list_fits_100_columns(capsys, flavor, long):
    argv = ["list"] + (["--flavor", flavor] if flavor else []) + (["--long"] if long else [])
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    count = len(optforge.runtime.registry.registered(flavor))
    assert out.rstrip().splitlines()[-1].startswith(f"{count} optimizers")


def test_list_names_arguments_in_the_flavors_api_family(capsys):
    _, torch_out, _ = run(capsys, "list", "--flavor", "torch")
    adam = next(line for line in torch_out.splitlines() if line.split()[:2] == ["adam", "torch"])
    assert "lr, betas, eps" in adam and "weight_decay" in adam
    assert "learning_rate" not in torch_out and "beta1" not in torch_out and "epsilon" not in torch_out
    _, mxnet_out, _ = run(capsys, "list", "--flavor", "mxnet2")
    adam = next(line for line in mxnet_out.splitlines() if line.split()[:2] == ["adam", "mxnet2"])
    assert "learning_rate, beta1, beta2, epsilon" in adam
    _, long_out, _ = run(capsys, "list", "--flavor", "torch", "--long")
    assert "betas=(0.9, 0.999)" in long_out and "eps=1e-08" in long_out


def test_list_refuses_an_unknown_flavor(capsys):
    status, out, err = run(capsys, "list", "--flavor", "pytorch")
    assert status == 2 and out == ""
    assert "unknown flavor 'pytorch'; did you mean 'torch'? known flavors: mxnet1, mxnet2, torch" in err


def test_show_is_short_and_names_the_files(capsys):
    status, out, _ = run(capsys, "show", "adam")
    assert status == 0
    assert len(out.splitlines()) < 45 and "def kernel_" not in out
    assert "mean   = beta1 * mean + (1 - beta1) * grad" in out
    assert "beta1 = 0.9 (float in [0, 1))" in out and "mean: starts as zeros" in out
    assert "opt = optforge.Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08)" in out
    assert "optforge.optim" not in out      # optforge.optim.Adam is the torch flavor's
    assert "optforge.torch" not in out      # and so is optforge.torch.Adam
    files = dict(line.strip().split(": ", 1) for line in out.split("Files:")[1].splitlines()[:6]
                 if ": " in line and line.startswith("    "))
    assert {k.strip() for k in files} == {"spec", "NumPy code", "CUDA kernels", "docs"}
    assert all(Path(p.strip()).is_file() for p in files.values())
    assert Path(files["spec"]).name == "adam.toml"
    status, code_out, _ = run(capsys, "show", "adam", "--code")
    assert status == 0 and "def kernel_default(xp, weight, grad, mean, var" in code_out


def test_show_uses_torch_names_for_the_torch_flavor(capsys):
    status, out, _ = run(capsys, "show", "adam", "--flavor", "torch")
    assert status == 0
    construct = out.split("Update rule:")[0]
    assert construct.index("opt = optforge.torch.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999)") < \
        construct.index("opt = optforge.optim.Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08") < \
        construct.index("opt = optforge.create('adam', flavor='torch', learning_rate=0.001")
    assert "torch module (a torch.optim.Optimizer):" in construct
    hyper = out.split("Hyperparameters:")[1].split("States:")[0]
    assert "lr = 0.001" in hyper and "betas = (0.9, 0.999)" in hyper and "eps = 1e-08" in hyper
    assert "learning_rate" not in hyper and "epsilon =" not in hyper


def test_unknown_names_suggest_the_closest(capsys):
    status, _, err = run(capsys, "show", "adma")
    assert status == 1 and "did you mean 'adam'" in err
    status, _, err = run(capsys, "show", "adam", "--flavor", "mxnet3")
    assert status == 2 and "did you mean 'mxnet1' or 'mxnet2'" in err.replace("'mxnet2' or 'mxnet1'", "'mxnet1' or 'mxnet2'")


@pytest.mark.parametrize("argv, message", [
    (["demo", "--steps", "-5"], "argument --steps: must be >= 10, got -5"),
    (["demo", "--steps", "ten"], "argument --steps: 'ten' is not an integer"),
    (["demo", "--seed", "-1"], "argument --seed: must be >= 0"),
    (["bench", "--repeat", "0"], "argument --repeat: must be >= 1"),
    (["bench", "--device", "cpu", "--min-log2", "12", "--max-log2", "10"], "need 0 <= --min-log2 <= --max-log2"),
    (["list", "--flavour", "torch"], "unrecognized arguments: --flavour"),
])
def test_bad_arguments_are_refused_before_anything_runs(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2 and message in err and out == ""


def test_docs_prints_the_installed_index(capsys):
    status, out, _ = run(capsys, "docs")
    path = Path(out.strip())
    assert status == 0 and path.name == "index.html" and path.is_file()
    assert path == Path(optforge.__file__).resolve().parent / "generated" / "docs" / "html" / "index.html"


def test_docs_open_hands_the_index_to_the_browser(capsys, monkeypatch):
    import webbrowser
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    status, out, _ = run(capsys, "docs", "--open")
    assert status == 0 and opened == [Path(out.strip()).as_uri()]


def test_the_module_entry_point_runs_the_same_cli():
    result = optforge_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"optforge {optforge.__version__}"


# -- a spec file instead of a name: `show FILE`, `docs FILE` ------------------------------


@pytest.fixture
def my_spec(tmp_path, monkeypatch):
    """A spec written with `optforge new`, outside specs/, and a cache of the test's own."""
    from optforge.codegen.authoring import new_spec
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    return new_spec("MyOpt", tmp_path / "my_specs", False)


def test_show_takes_a_spec_file(capsys, my_spec):
    status, out, err = run(capsys, "show", str(my_spec))
    assert status == 0, err
    assert out.startswith("MyOpt (mxnet2) - Momentum SGD")
    assert f"optforge.load_spec({str(my_spec.resolve())!r}) generates and registers it first" in out
    assert "opt = optforge.create('myopt', learning_rate=0.01, momentum=0.9)" in out
    assert "optforge.MyOpt(" not in out          # a loaded spec is no attribute of optforge
    assert "    weight = weight - lr * (mom + wd * weight)" in out and "momentum = 0.9 (float in [0, 1))" in out
    files = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.split("Files:\n")[1].split("\n\n")[0].splitlines() if line)}
    assert Path(files["spec"]) == my_spec.resolve()
    assert Path(files["NumPy code"]).is_file()
    assert files["docs"] == f"optforge docs {my_spec}"
    status, code, _ = run(capsys, "show", str(my_spec), "--code")
    assert status == 0 and "def kernel_default(xp, weight, grad, mom" in code
    # what `show NAME` prints once the spec is registered, apart from the loading hint and the files
    optforge.load_spec(my_spec)
    status, by_name, _ = run(capsys, "show", "myopt")
    assert status == 0
    hint = out.split("\n\n")[1]
    assert out.replace(hint + "\n\n", "").split("Files:")[0] == by_name.split("Files:")[0]


def test_show_file_of_a_shipped_spec_is_show_name(capsys):
    spec = Path(optforge.__file__).resolve().parent / "specs" / "adam.toml"
    _, by_file, _ = run(capsys, "show", str(spec))
    _, by_name, _ = run(capsys, "show", "adam")
    assert by_file.split("Files:")[0] == by_name.split("Files:")[0]


def test_show_file_refuses_another_flavor(capsys, my_spec):
    status, out, err = run(capsys, "show", str(my_spec), "--flavor", "torch")
    assert status == 2 and out == ""
    assert f"{my_spec} is a spec of flavor 'mxnet2', not 'torch'" in err


def test_docs_renders_a_spec_files_pages_into_the_cache(capsys, my_spec, monkeypatch):
    import webbrowser
    from support import html5_error
    status, out, err = run(capsys, "docs", str(my_spec))
    assert status == 0, err
    page = Path(out.strip())
    assert page.name == "myopt.html" and page.is_relative_to(my_spec.parent.parent / "cache" / "docs")
    html = page.read_text()
    assert "<h1>MyOpt <span class=\"flavor\">MXNet 2.0 conventions</span></h1>" in html
    assert html5_error(html) is None
    assert (page.parent / "style.css").is_file() and (page.parent / "index.html").is_file()
    markdown = (page.parent.parent / "myopt.md").read_text()
    assert markdown.splitlines()[1] == "# MyOpt (MXNet 2.0 conventions)"
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    status, again, _ = run(capsys, "docs", str(my_spec), "--open")
    assert status == 0 and again == out and opened == [page.as_uri()]
    # an edited spec gets a page of its own text
    my_spec.write_text(my_spec.read_text().replace("default = 0.9", "default = 0.8"))
    status, edited, _ = run(capsys, "docs", str(my_spec))
    assert status == 0 and edited != out and "<td><code>0.8</code></td>" in Path(edited.strip()).read_text()


@pytest.mark.parametrize("command", ["show", "docs"])
def test_a_bad_spec_file_is_reported_as_check_reports_it(capsys, tmp_path, monkeypatch, command):
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    missing = tmp_path / "nope.toml"
    status, out, err = run(capsys, command, str(missing))
    assert status == 1 and out == ""
    assert err.splitlines() == [f"{missing}: cannot read spec: No such file or directory",
                                f"optforge {command}: 1 mistake(s) in {missing}"]
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "Bad"\nupdate = """\nweight = weight - lr * gard\nweight = sqr(weight)\n"""\n')
    status, out, err = run(capsys, command, str(bad))
    assert status == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{bad}:3:24: unknown name 'gard'; did you mean 'grad'?")
    assert lines[1].startswith(f"{bad}:4:10: unknown function 'sqr'; did you mean 'sqrt'?")
    assert lines[2] == f"optforge {command}: 2 mistake(s) in {bad}"
    _, check_out, _ = run(capsys, "check", str(bad))
    assert check_out.splitlines() == lines[:2]       # the same lines as `optforge check`
    assert not (tmp_path / "cache" / "docs").exists()
