"""A metered OpenAI-compatible model endpoint for code the agent writes.

Some environments (RE-Bench's Rust CodeContests, an LLM judge) give the agent a model to call from
its own programs. `ModelEndpoint` serves `POST /v1/chat/completions` and `GET /v1/models` on
127.0.0.1 (an ephemeral port), backed by any `ModelBackend`, so the ordinary `openai` SDK pointed at
`base_url` with the run's key works unchanged, tools and streaming included.

Every call is priced and counted against the endpoint's own dollar and token budget (RE-Bench gave
"$500 of credit"), separately from the agent's own limits, and reported through `on_call` so the
harness can write it into events.jsonl and its Ledger under purpose "endpoint". The budget is
checked before each call against the worst case (prompt plus `max_tokens`, times `n`), and that
worst case stays reserved while the call runs, so concurrent calls cannot overshoot. A call that
the budget cannot cover gets HTTP 429 `insufficient_quota` (what OpenAI sends when credit is spent)
with `x-should-retry: false`, so the SDK reports it at once instead of retrying.

Why threads and the standard library: the endpoint must keep answering while the harness's own
thread is blocked (an environment's `score` is synchronous and may wait on a subprocess that calls
this endpoint), so it cannot live on the harness's event loop. It runs `http.server`'s
ThreadingHTTPServer in one thread and a private asyncio loop, on which every backend call runs, in
another. Model calls take hundreds of milliseconds or more, so a thread per connection costs
nothing that matters, and the standard library adds no dependency to the core.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .backend import ModelAPIError, ModelBackend
from .model import Model
from .log import get_logger
from .prices import PriceRow
from .types import Completion, Message, ToolCall, ToolSpec, Usage

log = get_logger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_N = 32
# Request fields passed on to the backend; others are accepted and ignored (listed in the record).
PASSED_PARAMS = ("temperature", "top_p", "stop", "seed", "tool_choice", "presence_penalty",
                 "frequency_penalty", "response_format", "reasoning_effort")
IGNORED_QUIETLY = {"model", "messages", "tools", "n", "max_tokens", "max_completion_tokens", "stream",
                   "stream_options", "user", "parallel_tool_calls", "logprobs", "top_logprobs", "metadata",
                   "store", "logit_bias", "service_tier"}


@dataclass(frozen=True)
class EndpointSpec:
    """What an environment declares when it needs a metered endpoint (the harness then serves one).

    `default_model` serves `small` and offline runs, `full_model` the benchmark scale; either may
    be overridden by the user. Budgets of None mean unlimited."""

    default_model: str
    full_model: str | None = None
    budget_usd: float | None = None
    token_budget: int | None = None
    max_tokens_cap: int | None = None  # lowers every request's max_tokens (slow local models)

    def model_for(self, size: str) -> str:
        return self.full_model if size == "full" and self.full_model else self.default_model


@dataclass
class EndpointCall:
    """One request the endpoint answered after authentication, successful or not."""

    model: str
    client: str  # the label of the API key used
    status: int  # HTTP status returned
    usage: Usage
    cost_usd: float
    latency_s: float
    n: int = 1
    max_tokens: int = 0
    error: str | None = None
    ignored_params: list[str] = field(default_factory=list)
    spent_usd: float = 0.0  # endpoint totals after this call
    spent_tokens: int = 0

    def to_event(self) -> dict[str, Any]:
        """The events.jsonl form (the harness adds ts and elapsed_s)."""
        event: dict[str, Any] = {
            "type": "model_call", "purpose": "endpoint", "model": self.model, "client": self.client,
            "status": self.status, "usage": self.usage.to_dict(), "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 4), "n": self.n, "max_tokens": self.max_tokens,
            "endpoint_spent_usd": self.spent_usd, "endpoint_spent_tokens": self.spent_tokens,
        }
        if self.error:
            event["error"] = self.error
        if self.ignored_params:
            event["ignored_params"] = self.ignored_params
        return event


class RequestError(Exception):
    """A request the endpoint refuses; becomes an OpenAI-style error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class _Request:
    """A validated chat-completions request in provider-neutral form."""

    model: str
    messages: list[Message]
    tools: list[ToolSpec] | None
    n: int
    max_tokens: int
    stream: bool
    include_usage: bool
    params: dict[str, Any]
    ignored: list[str]


class ModelEndpoint:
    """Serve one backend as an OpenAI-compatible endpoint with its own budget.

    The endpoint owns `backend` once started: every call runs on the endpoint's private loop, and
    `stop()` closes the backend there (pass `owns_backend=False` to keep it open).
    `on_call(EndpointCall)` runs on the endpoint's loop thread after every answered request; it
    must be quick and thread-safe (hand work to another loop with `call_soon_threadsafe`).
    """

    def __init__(self, backend: ModelBackend, *, model_name: str | None = None,
                 aliases: tuple[str, ...] = (), price: PriceRow | None = None,
                 budget_usd: float | None = None, token_budget: int | None = None,
                 on_call: Callable[[EndpointCall], None] | None = None, api_key: str | None = None,
                 max_tokens_cap: int | None = None, call_timeout_s: float = 600.0,
                 owns_backend: bool = True) -> None:
        self.backend = backend
        self.model_name = model_name or backend.model
        self.served = (self.model_name, *[a for a in aliases if a != self.model_name])
        self.spec = aliases[0] if aliases else self.model_name  # provider/model, as --endpoint-model takes it
        self.price = price if price is not None else backend.fallback_price()
        if budget_usd is not None and self.price is None:
            raise ValueError(f"the endpoint for {self.model_name!r} has a dollar budget but no price: pass "
                             f"price=PriceRow(...) (from the run's price book) or drop budget_usd")
        if budget_usd is not None and budget_usd < 0 or token_budget is not None and token_budget < 0:
            raise ValueError("endpoint budgets must not be negative")
        self.budget_usd = budget_usd
        self.token_budget = token_budget
        self.on_call = on_call
        self.max_tokens_cap = max_tokens_cap
        self.call_timeout_s = call_timeout_s
        self.owns_backend = owns_backend
        self._keys: dict[str, str] = {}
        self.api_key = self.add_key("agent", api_key)
        # Totals; changed only on the loop thread, read anywhere.
        self.usage = Usage()
        self.spent_usd = 0.0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = None
        self._server_thread: threading.Thread | None = None

    # -- keys and addresses -----------------------------------------------------------------
    def add_key(self, label: str, key: str | None = None) -> str:
        """Issue another key (e.g. one for the scorer); calls are reported with its label."""
        key = key or f"sk-rebench-{secrets.token_urlsafe(24)}"
        self._keys[key] = label
        return key

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the endpoint is not running; call start() first")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self, key: str | None = None) -> dict[str, str]:
        """Variables that point the `openai` SDK (and our starting solutions) at this endpoint."""
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": key or self.api_key,
                "REBENCH_ENDPOINT_MODEL": self.model_name}

    @property
    def spent_tokens(self) -> int:
        return self.usage.total_tokens

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> ModelEndpoint:
        if self._server is not None:
            raise RuntimeError("the endpoint is already running")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="rebench-endpoint-loop",
                                             daemon=True)
        self._loop_thread.start()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._server_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                               name="rebench-endpoint-http", daemon=True)
        self._server_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cancel calls in flight, close the backend (if owned) and the loop."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server_thread.join(timeout=5)
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self._drain(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        self._loop_thread.join(timeout=5)
        loop.close()
        self._server = self._loop = None

    async def _drain(self) -> None:
        # Calls cancelled here have nobody left to answer; their gather futures would be reported
        # as "exception never retrieved" at shutdown.
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.owns_backend:
            try:
                await self.backend.aclose()
            except Exception:  # closing must not stop the shutdown
                log.exception("closing the endpoint's backend failed")

    def __enter__(self) -> ModelEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called from HTTP threads) ---------------------------------------------
    def client_label(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token:
            for key, label in list(self._keys.items()):  # add_key may run concurrently
                if hmac.compare_digest(key.encode(), token.strip().encode()):
                    return label
        raise RequestError(401, "invalid API key: send 'Authorization: Bearer <key>' with the key this run "
                                "issued (in OPENAI_API_KEY)", type="invalid_request_error",
                           code="invalid_api_key")

    def models_body(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "rebench"}
                                           for m in self.served]}

    def submit(self, body: Any, client: str) -> tuple[_Request, Future]:
        request = self._parse(body)
        future = asyncio.run_coroutine_threadsafe(self._call(request, client), self._loop)
        return request, future

    # -- the metered call (runs on the endpoint loop) ----------------------------------------
    async def _call(self, request: _Request, client: str) -> list[Completion]:
        started = time.perf_counter()
        prompt_tokens = self.backend.count_tokens(request.messages, request.tools)
        worst_tokens = request.n * (prompt_tokens + request.max_tokens)
        worst_usd = (request.n * self.price.worst_case_cost(prompt_tokens, request.max_tokens)
                     if self.price else 0.0)
        try:
            self._check_budget(worst_usd, worst_tokens)
        except RequestError as exc:
            self._report(request, client, exc.status, Usage(), 0.0, started, exc.message)
            raise
        self._reserved_usd += worst_usd
        self._reserved_tokens += worst_tokens
        completions: list[Completion] = []
        error: BaseException | None = None
        try:
            results = await asyncio.wait_for(asyncio.gather(
                *(self._one(request) for _ in range(request.n)), return_exceptions=True), self.call_timeout_s)
            completions = [r for r in results if isinstance(r, Completion)]
            error = next((r for r in results if isinstance(r, BaseException)), None)
        except asyncio.TimeoutError:
            error = RequestError(504, f"the model did not answer within {self.call_timeout_s:.0f} s",
                                 type="timeout", code="timeout")
        finally:
            self._reserved_usd -= worst_usd
            self._reserved_tokens -= worst_tokens
        usage = sum((c.usage for c in completions), Usage())
        usage.calls = len(completions)
        cost = self.price.cost(usage) if self.price else 0.0
        self.usage = self.usage + usage
        self.spent_usd += cost
        if error is not None:
            exc = _as_request_error(error)
            self._report(request, client, exc.status, usage, cost, started, exc.message)
            raise exc
        self._report(request, client, 200, usage, cost, started, None)
        return completions

    async def _one(self, request: _Request) -> Completion:
        if not request.tools or self.backend.native_tools:  # `generate` differs only when emulating tools
            return await self.backend.complete(request.messages, request.tools, max_tokens=request.max_tokens,
                                               **request.params)
        return await self.backend.generate(request.messages, request.tools, max_tokens=request.max_tokens,
                                           **request.params)

    def _check_budget(self, worst_usd: float, worst_tokens: int) -> None:
        used = f"{_usd(self.spent_usd)} and {self.spent_tokens} tokens used in {self.usage.calls} calls"
        if self.budget_usd is not None:
            left = self.budget_usd - self.spent_usd - self._reserved_usd
            if self.spent_usd >= self.budget_usd:
                raise _quota(f"the endpoint's budget of {_usd(self.budget_usd)} is spent ({used})")
            if worst_usd > left:
                raise _quota(f"this call could cost up to {_usd(worst_usd)} but only {_usd(max(left, 0))} of the "
                             f"endpoint's {_usd(self.budget_usd)} budget is left ({used}); lower max_tokens or n")
        if self.token_budget is not None:
            left_tokens = self.token_budget - self.spent_tokens - self._reserved_tokens
            if self.spent_tokens >= self.token_budget:
                raise _quota(f"the endpoint's budget of {self.token_budget} tokens is spent ({used})")
            if worst_tokens > left_tokens:
                raise _quota(f"this call could use up to {worst_tokens} tokens but only {max(left_tokens, 0)} of "
                             f"the endpoint's {self.token_budget}-token budget are left ({used}); lower max_tokens or n")

    def _report(self, request: _Request, client: str, status: int, usage: Usage, cost: float,
                started: float, error: str | None) -> None:
        if self.on_call is None:
            return
        record = EndpointCall(model=self.model_name, client=client, status=status, usage=usage, cost_usd=cost,
                              latency_s=time.perf_counter() - started, n=request.n, max_tokens=request.max_tokens,
                              error=error, ignored_params=request.ignored, spent_usd=self.spent_usd,
                              spent_tokens=self.spent_tokens)
        try:
            self.on_call(record)
        except Exception:  # an observer must never break the endpoint
            log.exception("the endpoint's on_call callback failed")

    # -- parsing ------------------------------------------------------------------------------
    def _parse(self, body: Any) -> _Request:
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(400, "'model' is required (a string)", param="model")
        if model not in self.served:
            raise RequestError(404, f"the model {model!r} is not served here; use one of: {', '.join(self.served)}",
                               code="model_not_found", param="model")
        messages = _parse_messages(body.get("messages"))
        tools = _parse_tools(body.get("tools"))
        n = 1 if body.get("n") is None else body["n"]
        if not _is_int(n) or not 1 <= n <= MAX_N:
            raise RequestError(400, f"'n' must be an integer from 1 to {MAX_N}, got {n!r}", param="n")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is None:
            max_tokens = self.backend.default_max_tokens
        elif not _is_int(max_tokens) or max_tokens < 1:
            raise RequestError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}", param="max_tokens")
        if self.max_tokens_cap:
            max_tokens = min(max_tokens, self.max_tokens_cap)
        stream = bool(body.get("stream", False))
        options = body.get("stream_options") or {}
        params = {k: body[k] for k in PASSED_PARAMS if body.get(k) is not None}
        temperature = params.get("temperature")
        if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
            raise RequestError(400, f"'temperature' must be a number from 0 to 2, got {temperature!r}",
                               param="temperature")
        ignored = sorted(k for k in body if k not in PASSED_PARAMS and k not in IGNORED_QUIETLY)
        return _Request(model, messages, tools, n, max_tokens, stream,
                        bool(isinstance(options, dict) and options.get("include_usage")), params, ignored)


def _usd(x: float) -> str:
    return f"${x:.2f}" if x >= 10 else f"${x:.6f}".rstrip("0").rstrip(".") if x else "$0"


def _quota(message: str) -> RequestError:
    return RequestError(429, message, type="insufficient_quota", code="insufficient_quota",
                        headers={"x-should-retry": "false"})


def _as_request_error(error: BaseException) -> RequestError:
    if isinstance(error, RequestError):
        return error
    if isinstance(error, ModelAPIError):
        status = error.status if error.status and 400 <= error.status < 600 else (503 if error.retryable else 502)
        headers = {"x-should-retry": "true" if error.retryable else "false"}
        if error.retry_after is not None:
            headers["retry-after"] = f"{error.retry_after:g}"
        return RequestError(status, f"the model provider failed: {error}", type="upstream_error", headers=headers)
    return RequestError(500, f"the endpoint failed: {type(error).__name__}: {error}", type="server_error",
                        headers={"x-should-retry": "false"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(400, f"{where}.content: only text parts ({{'type': 'text', 'text': ...}}) are "
                                        f"supported, got {str(part)[:100]}", param="messages")
            parts.append(part["text"])
        return "".join(parts)
    raise RequestError(400, f"{where}.content must be a string or a list of text parts", param="messages")


def _parse_messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise RequestError(400, "'messages' must be a non-empty list of {'role', 'content'} objects", param="messages")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(400, f"{where} must be an object", param="messages")
        role = {"developer": "system"}.get(m.get("role"), m.get("role"))
        if role not in ("system", "user", "assistant", "tool"):
            raise RequestError(400, f"{where}.role must be system, developer, user, assistant or tool, "
                                    f"got {m.get('role')!r}", param="messages")
        msg = Message(role=role, content=_text(m.get("content"), where))
        if role == "assistant":
            for j, call in enumerate(m.get("tool_calls") or []):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise RequestError(400, f"{where}.tool_calls[{j}] needs function.name", param="messages")
                msg.tool_calls.append(ToolCall.from_json_text(str(call.get("id") or f"call_{j}"), fn["name"],
                                                              fn.get("arguments")))
        if role == "tool":
            if not isinstance(m.get("tool_call_id"), str):
                raise RequestError(400, f"{where} (role tool) needs tool_call_id", param="messages")
            msg.tool_call_id = m["tool_call_id"]
        out.append(msg)
    return out


def _parse_tools(raw: Any) -> list[ToolSpec] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise RequestError(400, "'tools' must be a list", param="tools")
    tools = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestError(400, f"tools[{i}] must be {{'type': 'function', 'function': {{'name', "
                                    f"'description', 'parameters'}}}}", param="tools")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        tools.append(ToolSpec(fn["name"], fn.get("description") or "", params))
    return tools or None


# -- wire format ------------------------------------------------------------------------------

def _wire_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content if message.content or not
                           message.tool_calls else None}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": c.raw_arguments if c.raw_arguments is not None else json.dumps(c.arguments)}}
            for c in message.tool_calls]
    return out


def _finish_reason(c: Completion) -> str:
    if c.message.tool_calls:
        return "tool_calls"
    return "length" if (c.stop_reason or "") in ("length", "max_tokens") else "stop"


def _wire_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {"prompt_tokens": prompt, "completion_tokens": usage.output_tokens,
            "total_tokens": prompt + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def completion_body(model: str, completions: list[Completion]) -> dict[str, Any]:
    usage = sum((c.usage for c in completions), Usage())
    return {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": i, "message": _wire_message(c.message), "logprobs": None,
                                         "finish_reason": _finish_reason(c)} for i, c in enumerate(completions)],
            "usage": _wire_usage(usage)}


def stream_chunks(model: str, completions: list[Completion], include_usage: bool) -> list[dict[str, Any]]:
    """The whole answer as chat.completion.chunk events (generated first, then sent)."""
    base = {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    chunks = []
    for i, c in enumerate(completions):
        delta = _wire_message(c.message)
        if "tool_calls" in delta:
            delta["tool_calls"] = [dict(tc, index=k) for k, tc in enumerate(delta["tool_calls"])]
        chunks.append(base | {"choices": [{"index": i, "delta": delta, "logprobs": None, "finish_reason": None}]})
        chunks.append(base | {"choices": [{"index": i, "delta": {}, "logprobs": None,
                                           "finish_reason": _finish_reason(c)}]})
    if include_usage:
        chunks.append(base | {"choices": [], "usage": _wire_usage(sum((c.usage for c in completions), Usage()))})
    return chunks


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck connection must not block stop()

    def __init__(self, address: tuple[str, int], handler: type, endpoint: ModelEndpoint) -> None:
        super().__init__(address, handler)
        self.endpoint = endpoint

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("endpoint connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # calls are reported through on_call
        pass

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its own timeout)
            self.close_connection = True

    def _send_error(self, exc: RequestError) -> None:
        self._send_json(exc.status, exc.body(), exc.headers)

    def do_GET(self) -> None:
        endpoint = self.server.endpoint
        try:
            endpoint.client_label(self.headers.get("Authorization"))
            path = self.path.split("?")[0].rstrip("/")
            if path == "/v1/models":
                return self._send_json(200, endpoint.models_body())
            if path.startswith("/v1/models/"):
                model = path[len("/v1/models/"):]
                for entry in endpoint.models_body()["data"]:
                    if entry["id"] == model:
                        return self._send_json(200, entry)
                raise RequestError(404, f"the model {model!r} is not served here", code="model_not_found")
            raise RequestError(404, f"no route GET {path}; this endpoint serves GET /v1/models and "
                                    f"POST /v1/chat/completions")
        except RequestError as exc:
            self._send_error(exc)

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                raise RequestError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
            raw = self.rfile.read(length)
            client = endpoint.client_label(self.headers.get("Authorization"))
            path = self.path.split("?")[0].rstrip("/")
            if path != "/v1/chat/completions":
                raise RequestError(404, f"no route POST {path}; this endpoint serves POST /v1/chat/completions")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RequestError(400, f"the request body is not valid JSON: {exc}") from exc
            request, future = endpoint.submit(body, client)
            try:
                completions = future.result(timeout=endpoint.call_timeout_s + 30)
            except RequestError:
                raise
            except Exception as exc:
                raise _as_request_error(exc) from exc
        except RequestError as exc:
            return self._send_error(exc)
        if not request.stream:
            return self._send_json(200, completion_body(request.model, completions))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for chunk in stream_chunks(request.model, completions, request.include_usage):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def start_endpoint(model: Model, declared: EndpointSpec,
                   on_call: Callable[[EndpointCall], None] | None) -> ModelEndpoint:
    """Serve `model` (from `Registry.model`) with the budgets `declared`; return it started.
    The endpoint answers errors to its client instead of retrying: agent code sees what a
    provider would send."""
    if model.price is None and declared.budget_usd is not None:
        raise RuntimeError(f"no price for {model.spec} on {dt.date.today()}, so the endpoint's "
                           f"${declared.budget_usd:g} budget cannot be enforced: add a price row "
                           f"(rebench_register_prices) or serve a priced model with --endpoint-model")
    endpoint = ModelEndpoint(model.backend, model_name=model.backend.model, aliases=(model.spec,), price=model.price,
                             budget_usd=declared.budget_usd, token_budget=declared.token_budget, on_call=on_call,
                             max_tokens_cap=declared.max_tokens_cap)
    return endpoint.start()
