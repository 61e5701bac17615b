"""The HTTP server of ``personalab serve``: a FastAPI app over one opened run.

    POST /predict    {"persona", "inputs", "profile"?} -> per input the label and the choice
                     probabilities (classification) or the generated text (generation)
    GET  /personas   the personas the run knows, and how a new one is answered
    GET  /health     what is served, and the batcher's counts
    GET  /docs       the OpenAPI page (the schema itself: /openapi.json)

Every request is answered by ``personalab.export.answer.answer_all`` — the function behind
``personalab predict`` — through the ``Batcher``, which puts concurrent requests of any
personas into one engine batch with a route per row. Requests are checked before they are
queued, so a batch holds only requests that can be answered: an unknown persona without a
profile is a 404 naming close matches, an empty or oversized input or too many inputs a 4xx
saying which limit, malformed JSON a 400. Each request is logged in one line (method, path,
status, milliseconds, persona, inputs) on the ``personalab.export.serve`` logger.

FastAPI was chosen because its pydantic bodies give request checking and the OpenAPI page from
one declaration, its ``async`` handlers let hundreds of requests wait on the batcher without a
thread each, and its test client runs the app in-process (tests need no network).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from personalab.errors import PersonalabError
from personalab.export.answer import PersonaAnswers, Question, answer_all
from personalab.models.decoding import GenerationSettings
from personalab.routing import Ensemble, PersonaBias
from personalab.run.rundir import Run
from personalab.export.serve.batcher import Batcher, BatchSettings, Busy
from personalab.export.serve.schema import (
    ErrorResponse, HealthResponse, PersonasResponse, PredictRequest, PredictResponse,
)

LOG = logging.getLogger("personalab.export.serve")
ROUTER_FILE = "router/router.json"
ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 413, 422, 503)}
# JSON escapes a character in at most 12 bytes (a surrogate pair); bodies beyond what the
# limits could allow are refused before they are read into memory and parsed.
_BYTES_PER_CHAR = 12


@dataclass(frozen=True)
class ServeSettings:
    batch: BatchSettings = field(default_factory=BatchSettings)
    max_inputs: int = 64  # texts in one request
    max_chars: int = 4000  # characters in one text (and in a profile)

    def max_body_bytes(self) -> int:
        return (self.max_inputs + 1) * (self.max_chars * _BYTES_PER_CHAR + 16) + 4096


class Service:
    """The run being served, its limits and its batcher: what the endpoints use."""

    def __init__(self, run: Run, settings: ServeSettings, generation: GenerationSettings | None = None,
                 chosen: str = ""):
        self.run, self.settings, self.chosen = run, settings, chosen
        self.batcher: Batcher[Question, PersonaAnswers] = Batcher(
            lambda questions: answer_all(run, questions, generation), lambda q: len(q.texts), settings.batch)

    def question(self, body: PredictRequest) -> Question:
        """``body`` as a question, or the HTTP error that says what is wrong with it."""
        self._check_inputs(body)
        if body.persona not in self.run.dataset.personas and body.profile is None:
            raise HTTPException(404, self._unknown(body.persona))
        if body.profile is not None and len(body.profile) > self.settings.max_chars:
            raise HTTPException(413, f"the profile has {len(body.profile)} characters; the limit is "
                                     f"{self.settings.max_chars} (--max-chars)")
        return Question(body.persona, tuple(body.inputs), body.profile)

    def _check_inputs(self, body: PredictRequest) -> None:
        limit = self.settings.max_inputs
        if not body.inputs:
            raise HTTPException(422, "inputs is empty: send at least one text to answer")
        if len(body.inputs) > limit:
            raise HTTPException(413, f"{len(body.inputs)} inputs in one request; the limit is {limit} "
                                     "(--max-inputs): split them over several requests")
        for i, text in enumerate(body.inputs):
            if not text.strip():
                raise HTTPException(422, f"inputs[{i}] is empty: send the text to answer")
            if len(text) > self.settings.max_chars:
                raise HTTPException(413, f"inputs[{i}] has {len(text)} characters; the limit is "
                                         f"{self.settings.max_chars} (--max-chars)")

    def _unknown(self, persona: str) -> str:
        close = difflib.get_close_matches(persona, list(self.run.dataset.personas), n=5, cutoff=0.6)
        matches = f"close matches: {', '.join(close)}" if close else "no close match (GET /personas lists them)"
        return (f"unknown persona {persona!r}: the run does not know it; {matches}. To answer for a persona new "
                "to the run, send its \"profile\" too")

    def response(self, found: PersonaAnswers) -> dict[str, Any]:
        """``PredictResponse`` as JSON: per input its label and probabilities, or its text."""
        task = self.run.dataset.spec.task
        if task == "generation":
            outputs = [{"input": a.text, "text": a.choice} for a in found.answers]
        else:
            outputs = [{"input": a.text, "label": a.choice, "probabilities": a.probabilities} for a in found.answers]
        return {"persona": found.persona_id, "how": found.how, "route": found.route, "task": task,
                "outputs": outputs}

    def personas(self) -> PersonasResponse:
        personas = list(self.run.dataset.personas)
        has_router = (self.run.root / ROUTER_FILE).is_file()
        new = ("send its \"profile\": the run's router places it among the experts by that text" if has_router
               else "send its \"profile\": the default route answers, with the profile given to the model")
        return PersonasResponse(count=len(personas), personas=personas,
                                default_route=default_route(self.run), new_personas=new)

    def health(self) -> HealthResponse:
        return HealthResponse(status="ok", run=str(self.run.root), chosen=self.chosen,
                              model=self.run.config.model.name, task=self.run.dataset.spec.task,
                              stats=self.batcher.stats.to_json())


def default_route(run: Run) -> str:
    personalizer = run.personalizer
    if isinstance(personalizer, Ensemble):
        return " + ".join(f"{weight:g} x [{table.default}]" for table, weight in personalizer.members)
    table = personalizer.inner if isinstance(personalizer, PersonaBias) else personalizer
    return str(table.default)


def create_app(run: Run, settings: ServeSettings = ServeSettings(), generation: GenerationSettings | None = None,
               chosen: str = "") -> FastAPI:
    """The server's app for ``run`` (``chosen``: which of a plan's runs it is, in words)."""
    service = Service(run, settings, generation, chosen)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        yield
        service.batcher.stop()

    app = FastAPI(title="personalab serve", lifespan=lifespan, version="1", description=(
        f"Answers for the personas of the run in `{run.root}` ({run.config.strategy} on {run.config.model.name}): "
        "each request through its persona's route, concurrent requests of any personas scored in one batch."))
    app.state.service = service
    _add_routes(app, service)
    _add_error_handlers(app)
    app.add_middleware(RequestLog, max_body_bytes=settings.max_body_bytes())
    return app


def _add_routes(app: FastAPI, service: Service) -> None:
    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True, responses=ERRORS,
              summary="answer texts for one persona")
    async def predict(body: PredictRequest, request: Request) -> JSONResponse:
        request.state.log = f"persona={body.persona!r} inputs={len(body.inputs)}"
        question = service.question(body)
        try:
            found = await asyncio.wrap_future(service.batcher.submit(question))
        except Busy as error:
            raise HTTPException(503, str(error), headers={"Retry-After": "1"}) from None
        except PersonalabError as error:
            raise HTTPException(422, str(error)) from None
        # Built by hand: the response model documents it; validating what we built costs per request.
        return JSONResponse(service.response(found))

    @app.get("/personas", response_model=PersonasResponse, summary="the personas the run knows")
    async def personas() -> PersonasResponse:
        return service.personas()

    @app.get("/health", response_model=HealthResponse, summary="what is served, and the batcher's counts")
    async def health() -> HealthResponse:
        return service.health()


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        broken = next((p for p in problems if p.get("type") == "json_invalid"), None)
        if broken is not None:
            return JSONResponse({"detail": f"malformed JSON: {broken.get('ctx', {}).get('error', broken['msg'])} "
                                           f"(at character {broken['loc'][-1]})"}, status_code=400)
        return JSONResponse({"detail": "; ".join(_problem(p) for p in problems)}, status_code=422)


def _problem(problem: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in problem["loc"] if part != "body") or "the body"
    if problem.get("type") == "missing" and where == "the body":
        return 'the body is missing: send a JSON object {"persona": ID, "inputs": [TEXT, ...]}'
    return f"{where}: {problem['msg']}"


class RequestLog:
    """ASGI middleware around the app: refuses a body larger than the limits could allow before
    it is read, turns a crash while answering into that request's 500 (logged with its
    traceback; the server goes on), and logs one line per request. Plain ASGI rather than
    ``@app.middleware("http")``, which wraps every request in extra tasks and streams: a cost
    paid per request, that a server answering many small requests per batch feels."""

    def __init__(self, app: Any, max_body_bytes: int):
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, sent = time.perf_counter(), {"status": 0}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            await send(message)

        size = dict(scope["headers"]).get(b"content-length", b"")
        if size.isdigit() and int(size) > self.limit:
            await _refuse(413, f"the body has {int(size)} bytes; the limit is {self.limit} (from --max-inputs and "
                               "--max-chars)", scope, receive, sending)
        else:
            await self._answer(scope, receive, sending, sent)
        milliseconds = (time.perf_counter() - started) * 1000
        LOG.info("%s %s %d %.1f ms %s", scope["method"], scope["path"], sent["status"], milliseconds,
                 scope.get("state", {}).get("log", ""))

    async def _answer(self, scope: dict, receive: Any, send: Any, sent: dict) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:  # noqa: BLE001 - one request's failure, not the server's
            LOG.exception("%s %s failed", scope["method"], scope["path"])
            if not sent["status"]:  # nothing sent yet: the client gets a 500 it can read
                await _refuse(500, f"internal error ({type(error).__name__}: {error}); the server logged it",
                              scope, receive, send)


async def _refuse(status: int, detail: str, scope: dict, receive: Any, send: Any) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
