"""``personalab cluster`` through the real entry point: the summary, the plot, the help, and
exit code 2 with a clear message for every user error."""

from __future__ import annotations

import pytest

from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize


@pytest.fixture
def run(cli_runner):
    """``run(*argv) -> (exit code, stdout, stderr)``, with only the cluster subcommand."""
    return cli_runner(("cluster",))


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth") / "data"
    config = SynthConfig(n_personas=12, n_groups=3, deviation=0.1, examples_per_persona=80)
    write_dataset(folder, *synthesize(config))
    return folder


def test_prints_the_summary_and_draws_the_plot(run, synth_dir, tmp_path):
    plot = tmp_path / "clusters.png"
    code, out, err = run("cluster", "--data", synth_dir, "--k", 3, "--plot", plot)
    assert code == 0, err
    assert out.startswith("3 clusters (kmeans), 12 personas embedded from inputs")
    assert "silhouette " in out and "(cosine): " in out and "Davies-Bouldin" in out
    assert f"plot: {plot}" in out and plot.read_bytes()[:4] == b"\x89PNG"


def test_k_range_and_other_choices(run, synth_dir):
    code, out, err = run("cluster", "--data", synth_dir, "--source", "profile",
                         "--method", "agglomerative", "--k-min", 2, "--k-max", 4)
    assert code == 0, err
    assert "(agglomerative, k chosen by silhouette over 2..4)" in out
    assert "embedded from profile" in out and "silhouette by k: " in out


def test_help_teaches_what_the_silhouette_means(run):
    code, out, _ = run("cluster", "--help")
    assert code == 0
    assert "silhouette" in out and "Kaufman" in out and "unlikely to beat one unified" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--k", 3, "--k-min", 2), "either --k or --k-min"),
        (("--k", 99), "too large"),
        (("--model", "no/such-model"), "not a local folder"),
    ],
)
def test_user_errors_exit_2(run, synth_dir, argv, message):
    code, out, err = run("cluster", "--data", synth_dir, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_data_dir_exits_2_with_the_loader_message(run, tmp_path, make_dataset):
    code, _, err = run("cluster", "--data", tmp_path / "absent")
    assert code == 2 and err.startswith("error: ") and "not found" in err
    broken = make_dataset(examples=["{broken"])
    code, _, err = run("cluster", "--data", broken)
    assert code == 2 and "examples.jsonl:1: invalid JSON" in err and "Traceback" not in err
