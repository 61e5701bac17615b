"""The plan: the playbook's decision tree as a resumable, measured run.

A plan spec (YAML, ``load_plan``) names a baseline, candidate strategies in cost order, an
acceptance rule and a stopping rule; ``run_plan`` trains, evaluates and compares them as
ledgered steps in a run directory, decides, and writes ``plan.json`` and ``report.md``.
"""

from personalab.plan.acceptance import Verdict, choose, judge
from personalab.plan.parse import load_plan, parse_plan
from personalab.plan.report import write_report
from personalab.plan.runner import PlanResult, run_plan
from personalab.plan.spec import Acceptance, Candidate, Gate, PlanSpec
from personalab.plan.steps import Steps

__all__ = ["Acceptance", "Candidate", "Gate", "PlanResult", "PlanSpec", "Steps", "Verdict", "choose",
           "judge", "load_plan", "parse_plan", "run_plan", "write_report"]
