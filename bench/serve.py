"""Serving benchmark: ``personalab serve`` under a bounded load of many personas, against the same
requests sent one at a time (../shared/BENCHMARK.md: ratios within one run).

Setup: a per_persona run (one adapter per persona, fleet-trained for one epoch) of synthetic
personas on the embedded MiniLM classifier, built once into ``--work`` and reused; or any
trained run or plan folder given with ``--run``. The request list: ``--requests`` requests of
one input each (the personas' own sentences), consecutive requests of different personas.

Arms, each against its own server process on 127.0.0.1 (started, warmed up with one untimed
pass over the request list, then stopped; never both at once):

- one_at_a_time: one client sends the requests in order, each after the previous answer,
  to a server started with ``--max-wait-ms 0`` (no request ever waits for company: the fair
  baseline, since a lone request gains nothing from waiting);
- concurrent: ``--clients`` clients (threads with their own keep-alive connection) send the
  same requests, client ``c`` taking requests ``c, c + clients, ...``, so that requests in
  flight together are for different personas; the server gathers for ``--max-wait-ms``.
  The list is sent ``--rounds`` times, and the server's resident memory (VmRSS) is read after
  the warm-up and after every round: memory is flat when the growth over the rounds is small.

Reported: requests per second of both arms and their ratio (``throughput_ratio``), p50 / p99
latency of each, errors (non-200 answers and failed connections), answers that differ between
the arms (label, or a probability by more than 1e-4), the server's memory samples, and its
batch counts (``/health``), and the most batching can gain on this machine: ``answer_all`` in
this process without HTTP, one request alone against batches of ``--clients`` (``ceiling``).
On a CPU a row of the model costs about the same in a batch as alone once the matrices are
large enough, so the ceiling there is about 2x; a batch's rows come nearly free only on a GPU.
Give the server ``--threads`` torch threads; the clients run in this process. ``--quick``: the tiny classifier, 8 personas, 64 requests (a smoke test only).

    python bench/serve.py --out runs/bench/serve.json
    python bench/serve.py --quick
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from personalab.data import load_dataset, write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, train_run, trained_with
from personalab.train.presets import resolve_settings

FULL = dict(model="minilm", personas=32, examples=40, requests=512)
QUICK = dict(model="tiny-classifier", personas=8, examples=20, requests=64)
HOST = "127.0.0.1"
TOLERANCE = 1e-4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (not for results)")
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--run", type=Path, help="serve this trained run or plan folder instead of building one")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/serve"),
                        help="where the built run and the servers' logs are kept")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests", type=int, help="requests per pass (default 512; --quick 64)")
    parser.add_argument("--rounds", type=int, default=3, help="passes of the concurrent arm (default 3)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="the concurrent server's gathering wait")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (default 1)")
    parser.add_argument("--without-profile", action="store_true",
                        help="build the run with model.with_profile false: the model reads the input alone "
                             "(about 12 tokens instead of 36), so a row costs less next to a request's fixed cost")
    return parser.parse_args()


def build_run(work: Path, size: dict, with_profile: bool = True) -> Path:
    """A per_persona run on synthetic personas, trained once into ``work`` and then reused."""
    suffix = "" if with_profile else "-without-profile"
    data, run = work / f"data-{size['personas']}", work / f"per_persona-{size['model']}-{size['personas']}{suffix}"
    if not (data / "examples.jsonl").exists():
        write_dataset(data, *synthesize(SynthConfig(n_personas=size["personas"],
                                                    examples_per_persona=size["examples"], seed=0)))
    config = RunConfig(data=str(data), strategy="per_persona", strategy_options={"min_train_rows": 4},
                       model=ModelSpec(name=size["model"], with_profile=with_profile),
                       settings=resolve_settings(epochs=1))
    if not trained_with(run, config):
        print(f"training {run} (once)", file=sys.stderr)
        train_run(config, run, progress=False, force=True)
    return run


def request_list(run: Path, count: int) -> list[tuple[str, str]]:
    """``count`` (persona, text) pairs, the personas in turn, each with its own sentences."""
    from personalab.plan.chosen import chosen_run
    from personalab.run.rundir import run_config

    dataset = load_dataset(run_config(chosen_run(run).path).data)
    by_persona: dict[str, list[str]] = {}
    for row in dataset.examples:
        by_persona.setdefault(row.persona_id, []).append(row.input)
    personas = sorted(by_persona)
    pairs = []
    for i in range(count):
        persona = personas[i % len(personas)]
        texts = by_persona[persona]
        pairs.append((persona, texts[(i // len(personas)) % len(texts)]))  # the persona's next sentence
    return pairs


class Server:
    """``personalab serve`` in a child process on a free loopback port."""

    def __init__(self, run: Path, max_wait_ms: float, threads: int, log: Path):
        self.port, self.log = _free_port(), log
        self._log_file = log.open("w")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "personalab.cli.main", "serve", str(run), "--host", HOST, "--port", str(self.port),
             "--max-wait-ms", str(max_wait_ms)], env=env, stdout=subprocess.DEVNULL,
            # A file, not a pipe: a pipe nobody reads fills up with the request log and stalls the server.
            stderr=self._log_file)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("the server did not answer /health in time")

    def get(self, path: str) -> dict[str, Any]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self._log_file.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Client:
    """One keep-alive connection; ``send`` returns (milliseconds, answer or None on error)."""

    def __init__(self, port: int):
        self.port, self.connection = port, None

    def send(self, persona: str, text: str) -> tuple[float, dict | None]:
        body = json.dumps({"persona": persona, "inputs": [text]})
        started = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self.connection.request("POST", "/predict", body, {"content-type": "application/json"})
            response = self.connection.getresponse()
            data = response.read()
            answer = json.loads(data)["outputs"][0] if response.status == 200 else None
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            self.connection, answer = None, None
        return (time.perf_counter() - started) * 1000, answer


def one_at_a_time(port: int, requests: list[tuple[str, str]]) -> tuple[float, list[float], list[dict | None]]:
    client = Client(port)
    started = time.perf_counter()
    results = [client.send(*request) for request in requests]
    return time.perf_counter() - started, [ms for ms, _ in results], [answer for _, answer in results]


def concurrent(port: int, requests: list[tuple[str, str]], clients: int) -> tuple[float, list[float], list]:
    """Client ``c`` sends requests ``c, c + clients, ...`` back to back; all clients at once."""
    latencies: list[float] = [0.0] * len(requests)
    answers: list[dict | None] = [None] * len(requests)
    start = threading.Barrier(clients)

    def work(c: int) -> None:
        client = Client(port)
        start.wait()
        for i in range(c, len(requests), clients):
            latencies[i], answers[i] = client.send(*requests[i])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    return time.perf_counter() - started, latencies, answers


def batching_ceiling(run: Path, requests: list[tuple[str, str]], clients: int, threads: int) -> dict[str, float]:
    """In this process, without HTTP: milliseconds of ``answer_all`` for one request alone and
    per request in a batch of ``clients``. Their ratio is the most batching can gain on this
    machine: the throughput ratio a perfect server would reach."""
    import torch

    from personalab.export.answer import Question, answer_all
    from personalab.plan.chosen import chosen_run
    from personalab.run.rundir import open_run

    torch.set_num_threads(threads)
    opened = open_run(chosen_run(run).path)
    questions = [Question(persona, (text,)) for persona, text in requests]
    answer_all(opened, questions[:clients])  # warm-up
    started = time.perf_counter()
    for question in questions[:clients * 4]:
        answer_all(opened, [question])
    alone = (time.perf_counter() - started) * 1000 / (clients * 4)
    started = time.perf_counter()
    for start in range(0, clients * 4, clients):
        answer_all(opened, questions[start:start + clients])
    batched = (time.perf_counter() - started) * 1000 / (clients * 4)
    return {"ms_alone": alone, "ms_per_request_batched": batched, "ratio": alone / batched}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def mismatches(a: list[dict | None], b: list[dict | None]) -> int:
    """Requests answered by both arms whose label or probabilities differ."""
    differ = 0
    for x, y in zip(a, b):
        if x is None or y is None:
            continue
        close = all(abs(x["probabilities"][k] - y["probabilities"][k]) <= TOLERANCE for k in x["probabilities"])
        differ += x["label"] != y["label"] or not close
    return differ


def main() -> None:
    args = parse_args()
    size = QUICK if args.quick else FULL
    run = args.run or build_run(args.work, size, with_profile=not args.without_profile)
    requests = request_list(run, args.requests or size["requests"])
    print(f"{len(requests)} requests, {len({p for p, _ in requests})} personas, {args.clients} clients, "
          f"server threads {args.threads}", file=sys.stderr)

    logs = args.work  # the servers' request logs
    logs.mkdir(parents=True, exist_ok=True)
    server = Server(run, 0.0, args.threads, logs / "server-one-at-a-time.log")  # the baseline: no waiting
    try:
        one_at_a_time(server.port, requests)  # warm-up
        seq_seconds, seq_latency, seq_answers = one_at_a_time(server.port, requests)
    finally:
        server.stop()

    server = Server(run, args.max_wait_ms, args.threads, logs / "server-concurrent.log")
    try:
        concurrent(server.port, requests, args.clients)  # warm-up: every batch shape once
        memory = [server.rss_mb()]
        rounds = []
        for _ in range(args.rounds):
            rounds.append(concurrent(server.port, requests, args.clients))
            memory.append(server.rss_mb())
        stats = server.get("/health")["stats"]
    finally:
        server.stop()

    ceiling = batching_ceiling(run, requests, args.clients, args.threads)
    conc_seconds = statistics.median(seconds for seconds, _, _ in rounds)
    conc_latency = [ms for _, latencies, _ in rounds for ms in latencies]
    conc_answers = [answer for _, _, answers in rounds for answer in answers]
    errors = sum(a is None for a in seq_answers) + sum(a is None for a in conc_answers)
    results = {
        "run": str(run), "requests": len(requests), "clients": args.clients, "rounds": args.rounds,
        "max_wait_ms": args.max_wait_ms, "server_threads": args.threads, "quick": args.quick,
        "requests_per_second_one_at_a_time": len(requests) / seq_seconds,
        "requests_per_second_concurrent": len(requests) / conc_seconds,
        "throughput_ratio": seq_seconds / conc_seconds,
        "p50_ms_one_at_a_time": percentile(seq_latency, 50), "p99_ms_one_at_a_time": percentile(seq_latency, 99),
        "p50_ms": percentile(conc_latency, 50), "p99_ms": percentile(conc_latency, 99),
        "errors": errors,
        "mismatches": sum(mismatches(seq_answers, answers) for _, _, answers in rounds),
        "server_rss_mb": memory, "server_rss_growth_mb": memory[-1] - memory[0],
        "batches": stats, "ceiling": ceiling, "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.out}")


def print_table(r: dict[str, Any]) -> None:
    print(f"{'arm':<16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'one at a time':<16}{r['requests_per_second_one_at_a_time']:>9.1f}{r['p50_ms_one_at_a_time']:>9.1f}"
          f"{r['p99_ms_one_at_a_time']:>9.1f}")
    print(f"{str(r['clients']) + ' clients':<16}{r['requests_per_second_concurrent']:>9.1f}{r['p50_ms']:>9.1f}"
          f"{r['p99_ms']:>9.1f}")
    print(f"throughput ratio {r['throughput_ratio']:.2f}x, errors {r['errors']}, mismatches {r['mismatches']}, "
          f"server memory {' -> '.join(f'{m:.0f}' for m in r['server_rss_mb'])} MB, "
          f"{r['batches']['requests']} requests in {r['batches']['batches']} batches")
    ceiling = r["ceiling"]
    print(f"without HTTP, in this process: one request alone {ceiling['ms_alone']:.1f} ms, "
          f"{ceiling['ms_per_request_batched']:.1f} ms per request in batches of {r['clients']}: "
          f"batching can gain at most {ceiling['ratio']:.2f}x on this machine")


if __name__ == "__main__":
    main()
