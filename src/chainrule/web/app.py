"""The playground's HTTP side (Starlette): the page, its scripts, and one JSON API per view.

Thin: each endpoint checks the request (size, JSON, field types and bounds), runs one function
of :mod:`chainrule.web.nextword`, :mod:`.surprisal` or :mod:`.inspect` in a worker thread, and
answers JSON. Every error is a JSON body ``{"error": "one sentence"}`` with a 4xx status
(500 only for a bug, still without a traceback). See docs/playground.md for the API.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from importlib import resources
from pathlib import Path

from chainrule.errors import ChainruleError
from chainrule.web.served import DEFAULT_LIMITS, CannotDo, Limits, ServedModel

log = logging.getLogger("chainrule")

STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


class RequestError(Exception):
    """A request the API refuses: ``status`` and one sentence."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def static_files() -> dict[str, bytes]:
    """The page's files, read once from the installed package (no CDN, works offline)."""
    root = resources.files("chainrule.web") / "static"
    return {name: (root / name).read_bytes() for name in STATIC}


def create_app(models: list[ServedModel], *, ladder_dir: Path | None = None,
               limits: Limits = DEFAULT_LIMITS, allowed_hosts: list[str] | None = None):
    """The Starlette application serving ``models`` (and a ladder report directory).

    ``allowed_hosts`` (``chainrule serve`` passes the loopback names when it binds to
    127.0.0.1) refuses requests for any other ``Host``, so a web page elsewhere cannot reach
    the server through a DNS name that points at this computer.
    """
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
        from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
        from starlette.routing import Route
    except ImportError:
        raise ChainruleError("the playground needs Starlette and uvicorn; install them with "
                             "pip install 'chainrule[web]'.") from None
    from chainrule.web import inspect, nextword, surprisal

    files = static_files()
    by_name = {m.name: m for m in models}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def body(request) -> dict:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            # only JSON: a page on another site cannot send it without asking first (CORS)
            raise RequestError(415, "send the request body as JSON with the header "
                                    "Content-Type: application/json.")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise RequestError(413, f"the request is {int(declared):,} bytes; the playground "
                                    f"takes at most {limits.max_body_bytes:,}.")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limits.max_body_bytes:
                raise RequestError(413, f"the request is over {limits.max_body_bytes:,} bytes, "
                                        "the most the playground takes; send less text.")
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(400, f"the request body is not valid JSON ({e}); send a JSON "
                                    "object such as {\"model\": \"gpt\", \"text\": \"...\"}.")
        if not isinstance(obj, dict):
            raise RequestError(400, "the request body must be a JSON object, e.g. "
                                    "{\"model\": \"gpt\", \"text\": \"...\"}.")
        return obj

    def model_of(req: dict) -> ServedModel:
        name = req.get("model")
        if not isinstance(name, str) or name not in by_name:
            raise RequestError(404, f"unknown model {name!r}; choose one of "
                                    f"{', '.join(by_name) or '(none loaded)'} (GET /api/models).")
        return by_name[name]

    def text(req: dict, key: str, limit: int, *, required: bool = True, default: str = "") -> str:
        v = req.get(key, None if required else default)
        if v is None and not required:
            return default
        if not isinstance(v, str):
            raise RequestError(400, f"{key!r} must be a string of text.")
        if len(v) > limit:
            raise RequestError(413, f"{key!r} is {len(v):,} characters; the playground takes at "
                                    f"most {limit:,} here; shorten it.")
        return v

    def number(req: dict, key: str, default, lo, hi, *, whole: bool = False, none_ok=False):
        v = req.get(key, default)
        if v is None and none_ok:
            return None
        ok = isinstance(v, int if whole else (int, float)) and not isinstance(v, bool)
        if not ok or not lo <= v <= hi:
            kind = "a whole number" if whole else "a number"
            raise RequestError(400, f"{key!r} must be {kind} from {lo} to {hi}, got {v!r}.")
        return v

    def handler(fn):
        async def endpoint(request):
            try:
                return await fn(request)
            except RequestError as e:
                return error(e.status, str(e))
            except CannotDo as e:
                return error(422, str(e))
            except ChainruleError as e:
                return error(400, str(e))
            except Exception as e:  # noqa: BLE001  (a bug: say so, no traceback on the page)
                log.error("playground: internal error (%s: %s)", type(e).__name__, e)
                return error(500, f"internal error ({type(e).__name__}); this is a bug in "
                                  "chainrule, please report it.")
        return endpoint

    async def index(request):
        return Response(files["index.html"], media_type=STATIC["index.html"])

    async def static(request):
        name = request.path_params["name"]
        if name not in files:  # a fixed list: no path from a request reaches the disk
            return error(404, f"no file {name!r} here.")
        return Response(files[name], media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache"})

    async def list_models(request):
        return JSONResponse({"models": [m.describe() for m in models],
                             "ladder": ladder_dir is not None,
                             "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__}})

    async def api_next_word(request):
        req = await body(request)
        sm = model_of(req)
        ctx = text(req, "context", limits.max_context_chars, required=False)
        src = req.get("source")
        src = None if src is None else text(req, "source", limits.max_context_chars)
        top_k = number(req, "top_k", None, 1, 10**9, whole=True, none_ok=True)
        kw = {"temperature": number(req, "temperature", 1.0, 0, 100), "top_k": top_k,
              "top_p": number(req, "top_p", 1.0, 1e-9, 1),
              "min_p": number(req, "min_p", 0.0, 0, 1), "source": src, "limits": limits}
        out = await run_in_threadpool(nextword.next_word, sm, ctx, **kw)
        return JSONResponse(out)

    def models_of(req: dict) -> list[ServedModel]:
        names = req.get("models", [req.get("model")] if "model" in req else None)
        if not isinstance(names, list) or not names or len(names) > len(by_name):
            raise RequestError(400, "'models' must be a list of model names (GET /api/models).")
        return [model_of({"model": n}) for n in dict.fromkeys(names)]

    async def api_surprisal(request):
        req = await body(request)
        sms = models_of(req)
        t = text(req, "text", limits.max_text_chars)
        if not t.strip():
            raise RequestError(400, "'text' is empty; paste some text to score.")
        ranks = req.get("ranks", True)
        if not isinstance(ranks, bool):
            raise RequestError(400, "'ranks' must be true or false.")
        out = [await run_in_threadpool(surprisal.surprisal_view, sm, t, limits, ranks=ranks)
               for sm in sms]
        return JSONResponse({"results": out, "buckets": list(surprisal.RANK_BUCKETS)})

    async def api_attention(request):
        req = await body(request)
        sm = model_of(req)
        t = text(req, "text", limits.max_context_chars)
        src = req.get("source")
        src = None if src is None else text(req, "source", limits.max_context_chars)
        out = await run_in_threadpool(inspect.attention_view, sm, t, source=src, limits=limits)
        return JSONResponse(out)

    async def api_bpe(request):
        req = await body(request)
        corpus = text(req, "corpus", limits.max_corpus_chars)
        merges = number(req, "merges", 10, 0, limits.max_merges, whole=True)
        word = text(req, "word", 100, required=False)
        out = await run_in_threadpool(inspect.bpe_view, corpus, merges, word=word,
                                      limits=limits)
        return JSONResponse(out)

    async def api_generate(request):
        req = await body(request)
        sms = models_of(req)
        prompt = text(req, "prompt", limits.max_context_chars, required=False)
        src = req.get("source")
        src = None if src is None else text(req, "source", limits.max_context_chars)
        cols = nextword.columns(
            max_new_tokens=number(req, "max_new_tokens", 40, 1, limits.max_new_tokens,
                                  whole=True),
            temperature=number(req, "temperature", 1.0, 0, 100),
            top_p=number(req, "top_p", 0.9, 1e-9, 1),
            num_beams=number(req, "num_beams", 4, 1, limits.max_beams, whole=True),
            seed=number(req, "seed", None, 0, 2**63 - 1, whole=True, none_ok=True))
        for sm in sms:
            why = sm.can("generate")
            if why:
                raise CannotDo(why)
        return StreamingResponse(_sse(sms, prompt, cols, src), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    def _sse(sms, prompt, cols, src):
        """Server-sent events from a worker thread that decodes to the end whatever the client
        does (bounded by max_new_tokens), so a model's lock is never left held."""
        q: queue.Queue = queue.Queue()

        def work():
            try:
                for sm in sms:
                    for ev in nextword.generate_events(sm, prompt, cols, source=src):
                        q.put(ev)
            except ChainruleError as e:
                q.put({"event": "error", "error": str(e)})
            except Exception as e:  # noqa: BLE001
                log.error("playground: internal error (%s: %s)", type(e).__name__, e)
                q.put({"event": "error", "error": f"internal error ({type(e).__name__}); "
                                                  "this is a bug in chainrule."})
            q.put(None)

        threading.Thread(target=work, daemon=True).start()
        start = {"event": "start", "models": [m.name for m in sms],
                 "columns": [c.describe() for c in cols]}
        yield _event(start)
        while (ev := q.get()) is not None:
            yield _event(ev)
        yield _event({"event": "end"})

    async def api_ladder(request):
        return JSONResponse(await run_in_threadpool(inspect.ladder_view, ladder_dir))

    async def ladder_plot(request):
        if ladder_dir is None or not (ladder_dir / "ladder.png").is_file():
            return error(404, "this ladder report has no plot.")
        return FileResponse(ladder_dir / "ladder.png", media_type="image/png")

    async def not_found(request, exc):
        status = getattr(exc, "status_code", 500)
        msg = ("no such page or API; the API is under /api (see docs/playground.md)."
               if status == 404 else
               f"method {request.method} is not allowed here." if status == 405 else
               str(getattr(exc, "detail", "error")))
        return error(status, msg)

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/models", list_models),
        Route("/api/next-word", handler(api_next_word), methods=["POST"]),
        Route("/api/surprisal", handler(api_surprisal), methods=["POST"]),
        Route("/api/attention", handler(api_attention), methods=["POST"]),
        Route("/api/bpe", handler(api_bpe), methods=["POST"]),
        Route("/api/generate", handler(api_generate), methods=["POST"]),
        Route("/api/ladder", handler(api_ladder)),
        Route("/api/ladder/plot.png", ladder_plot),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    return _HostCheck(app, allowed_hosts) if allowed_hosts else app


class _HostCheck:
    """ASGI wrapper: answer 400 with a JSON error to a request for a ``Host`` not listed."""

    def __init__(self, app, hosts: list[str]):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    def __getattr__(self, name):  # routes, state, ... of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
            if name not in self.hosts:
                from starlette.responses import JSONResponse

                resp = JSONResponse({"error": f"this server answers only to "
                                              f"{', '.join(sorted(self.hosts))}, not {host!r}; "
                                              "open it through http://127.0.0.1:PORT/."},
                                    status_code=400)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _event(obj: dict) -> str:
    return f"event: {obj['event']}\ndata: {json.dumps(obj, ensure_ascii=False)}\n\n"


__all__ = ["RequestError", "create_app", "static_files"]
