"""The HTTP API's request and response bodies: pydantic models, so that FastAPI checks each
request's shape and documents both on the OpenAPI page (``/docs``) with these descriptions and
examples. Limits that depend on the server's settings (inputs per request, characters per
input) are checked in ``personalab.export.serve.app``, which knows them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"persona": "p03", "inputs": ["I love this movie", "what a waste of time"]},
                     {"persona": "newcomer", "profile": "A retired teacher who loves jazz.", "inputs": ["a text"]}]})

    persona: str = Field(min_length=1, description="the persona id (GET /personas lists the run's personas)")
    inputs: list[str] = Field(description="the texts to answer for this persona, one answer each, in order")
    profile: str | None = Field(
        default=None, min_length=1,
        description="profile text of a persona the run has not seen: it is given to the model and, in a run "
                    "with a router (moe), places the persona among the experts; ignored for a known persona")


class Output(BaseModel):
    input: str = Field(description="the text answered, as sent")
    label: str | None = Field(default=None, description="classification: the predicted choice")
    probabilities: dict[str, float] | None = Field(
        default=None, description="classification: the probability of every choice (they sum to 1)")
    text: str | None = Field(default=None, description="generation: the generated answer")


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "persona": "p03", "how": "its own route", "route": "persona/p03", "task": "classification",
        "outputs": [{"input": "I love this movie", "label": "like", "probabilities": {"dislike": 0.2, "like": 0.8}}],
    }]})

    persona: str
    how: str = Field(description="how the persona was routed, in words (own route, default route, router, ...)")
    route: str = Field(description="the adapters (or ensemble of adapter mixtures) that answered")
    task: Literal["classification", "generation"]
    outputs: list[Output] = Field(description="one per input, in the order sent")


class PersonasResponse(BaseModel):
    count: int
    personas: list[str] = Field(description="every persona id the run knows")
    default_route: str = Field(description="what answers for a known persona without a route of its own")
    new_personas: str = Field(description="how a persona the run has not seen is answered (send its profile)")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    run: str = Field(description="the run directory being served")
    chosen: str = Field(description="for a plan folder: which of its strategies, and why; else empty")
    model: str
    task: str
    stats: dict[str, int] = Field(description="requests answered, engine batches, rows, largest batch (requests)")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong, in words")
