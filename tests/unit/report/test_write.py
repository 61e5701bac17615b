"""Writing the report files: atomically, again and again, and for plans in any state — skipped,
failed or never-run candidates, a plan still running or failed, a plan with nothing compared."""

from __future__ import annotations

from personalab.report import FILES, REPORT_HTML, REPORT_MD, write_report


def test_it_writes_the_html_the_markdown_and_its_pictures(plan_dir):
    paths = write_report(plan_dir)
    assert paths == [plan_dir / REPORT_HTML, plan_dir / REPORT_MD] and all(path.exists() for path in paths)
    pictures = sorted(p.name for p in (plan_dir / FILES).iterdir())
    assert pictures == ["clusters-1-inputs-kmeans-k2-8.png", "persona_gains.png", "step_times.png",
                        "training_curves.png"]
    assert not list(plan_dir.rglob("*.tmp"))


def test_writing_again_replaces_and_drops_stale_pictures(plan_dir, quick_plots):
    write_report(plan_dir)
    (plan_dir / FILES / "old_picture.png").write_bytes(b"x")
    first = (plan_dir / REPORT_MD).read_text()
    write_report(plan_dir)
    assert (plan_dir / REPORT_MD).read_text() == first
    assert not (plan_dir / FILES / "old_picture.png").exists()


def test_a_plan_with_nothing_compared_or_trained_renders(plan_dir, edit_plan, quick_plots):
    def strip(plan):
        plan.update(clustering={}, decision=None, status="running", confirmation=None, references={})
        for candidate in plan["candidates"]:
            candidate.update(status="pending", comparisons={}, verdict=None, metrics={}, reason=None)

    edit_plan(plan_dir, strip)
    for folder in ("runs", "compare"):
        for path in sorted((plan_dir / folder).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    write_report(plan_dir)
    page = (plan_dir / REPORT_HTML).read_text()
    assert "The plan is still running" in page and "No decision yet" in page
    assert page.count(">not reached</span>") == 15  # 5 in the evidence, 5 in each of the two tables
    assert "No candidate was compared with the baseline." in page and "No learning curves were recorded" in page
    assert "No clustering in this plan" in page
    assert sorted(p.name for p in (plan_dir / FILES).iterdir()) == ["step_times.png"]


def test_a_failed_plan_says_so_and_how_to_resume(plan_dir, edit_plan, quick_plots):
    edit_plan(plan_dir, lambda plan: plan.update(status="failed", error="RuntimeError: disk full"))
    write_report(plan_dir)
    markdown = (plan_dir / REPORT_MD).read_text()
    assert "> The plan failed: RuntimeError: disk full." in markdown and "to resume" in markdown
    assert "Error: **RuntimeError: disk full**" in markdown


def test_without_a_gate_clustering_the_runs_own_picture_is_shown(plan_dir, edit_plan, quick_plots):
    edit_plan(plan_dir, lambda plan: plan.update(clustering={}))
    write_report(plan_dir)
    markdown = (plan_dir / REPORT_MD).read_text()
    assert "![clusters of per_cluster](report_files/clusters-per_cluster.png)" in markdown
    assert "The clustering of the run **per_cluster** (k = 2, silhouette **0.300**)" in markdown


def test_no_candidate_chosen_shows_the_best_that_differs(plan_dir, edit_plan, quick_plots):
    def no_winner(plan):
        plan["decision"].update(chosen="unified", accepted=False, picked=None)
        plan["candidates"][2]["comparisons"]["val"]["overall"].update(b_better=0, a_better=0)  # fleet: identical

    edit_plan(plan_dir, no_winner)
    write_report(plan_dir)
    markdown = (plan_dir / REPORT_MD).read_text()
    assert "shown is the one with the largest accuracy gain, per_cluster. (fleet predicted exactly like" in markdown
