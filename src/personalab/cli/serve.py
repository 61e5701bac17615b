"""``personalab serve``: keep a trained run loaded and answer HTTP requests for its personas,
concurrent requests of any personas batched together (``personalab.export.serve``)."""

from __future__ import annotations

import argparse
from typing import Any

from personalab.cli.evaluate import add_generation_arguments, settings_from
from personalab.cli.runs import add_run_arguments, resolve_run

EPILOG = """\
examples:
  personalab serve runs/demo/plan                       # the strategy the plan chose, on 127.0.0.1:8000
  personalab serve runs/per_persona --port 8080 --max-wait-ms 10
  curl -s localhost:8000/predict -H 'content-type: application/json' \\
       -d '{"persona": "p00", "inputs": ["I love this movie"]}'

endpoints: POST /predict {"persona": ID, "inputs": [TEXT, ...], "profile": TEXT (a new persona)},
GET /personas, GET /health, and the OpenAPI page at /docs. Answers equal `personalab predict`.

Requests that arrive within --max-wait-ms of each other are scored in one engine batch, each
row through its own persona's route: waiting a few milliseconds buys many personas' answers
for about the price of one forward pass. For a causal LM whose personas each use one plain
adapter, `personalab export` + vLLM is the other way; serve answers every kind of run
(mixtures, ensembles, per-persona offsets, the embedded encoder classifier).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="an HTTP server answering many personas from one process, concurrent requests batched",
        description="Load a trained run (or the run a plan chose) once and answer HTTP requests: per input the "
        "predicted label and choice probabilities, or the generated text. Needs the serve extra: "
        "pip install 'personalab[serve]'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every "
                             "interface - there is no authentication)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--max-wait-ms", type=_non_negative, default=5.0, metavar="MS",
                        help="how long a request waits for others to share its batch (default 5; 0: no waiting, "
                             "a batch is what is already queued)")
    parser.add_argument("--max-batch-rows", type=_positive, default=256, metavar="N",
                        help="a batch closes once it holds N inputs (default 256)")
    parser.add_argument("--max-inputs", type=_positive, default=64, metavar="N",
                        help="most inputs in one request; more is a 413 (default 64)")
    parser.add_argument("--max-chars", type=_positive, default=4000, metavar="N",
                        help="most characters in one input or profile; more is a 413 (default 4000)")
    parser.add_argument("--max-queue", type=_positive, default=1024, metavar="N",
                        help="most requests waiting to be batched; more are refused with 503 (default 1024)")
    add_generation_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)  # bad flags fail before the model loads
    serving = _serve_settings(args)
    uvicorn, create_app = _server_modules()
    from personalab.run.rundir import open_run

    chosen = resolve_run(args)
    run_ = open_run(chosen.path)
    print(f"loaded {chosen.path}: {run_.config.strategy} on {run_.config.model.name}, "
          f"{len(run_.dataset.personas)} personas")
    app = create_app(run_, serving, settings, chosen.note)
    print(f"serving on http://{args.host}:{args.port} (API page: /docs); Ctrl-C stops")
    _configure_logging()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    return 0


def _serve_settings(args: argparse.Namespace) -> Any:
    from personalab.export.serve.app import ServeSettings
    from personalab.export.serve.batcher import BatchSettings

    batch = BatchSettings(max_wait_ms=args.max_wait_ms, max_batch_rows=args.max_batch_rows, max_queue=args.max_queue)
    return ServeSettings(batch=batch, max_inputs=args.max_inputs, max_chars=args.max_chars)


def _server_modules() -> tuple[Any, Any]:
    from personalab.errors import PersonalabError

    try:
        import uvicorn

        from personalab.export.serve.app import create_app
    except ImportError as error:
        raise PersonalabError(f"personalab serve needs the serve extra ({error.name} is missing): "
                              "pip install 'personalab[serve]'") from None
    return uvicorn, create_app


def _configure_logging() -> None:
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("personalab.export.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
