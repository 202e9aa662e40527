"""Generation from a model served behind an OpenAI-compatible API: the ``endpoint`` target.

``EndpointGenerator`` has the call signature of ``models.generate.generate``, so
the battery runs against a served model exactly as against a local one
(``battery.runner.evaluate(..., generator=...)``). Only the standard library is
used (urllib). Decoding is greedy: temperature 0 and a fixed seed with every
request (a sampled pass sends its own temperature, top-p and seed).

``completions`` renders each prompt here with the served model's chat template
and posts it to ``/v1/completions``, so a prefilling attack's prefix is sent as
the start of the reply, as on a local model. ``chat`` posts the messages to
``/v1/chat/completions`` and cannot send a prefix.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .plan import EndpointTarget

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class EndpointError(RuntimeError):
    """The endpoint could not be reached or answered with something other than a completion."""


def public_url(url: str) -> str:
    """``url`` without credentials, query or fragment: what may be recorded."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class EndpointGenerator:
    """Replies from an OpenAI-compatible endpoint, with the ``generate`` signature."""

    def __init__(self, spec: EndpointTarget):
        self.spec = spec
        self.url = spec.base_url.rstrip("/") + ("/completions" if spec.api == "completions" else "/chat/completions")
        self._api_key = os.environ.get(spec.api_key_env) or None
        self.served: Counter[str] = Counter()
        """Model names the server reported in its replies, with counts: what actually answered."""

    def __call__(self, model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int, batch_size: int,
                 prefills: list[str] | None = None, progress=None, sampling=None) -> list[str]:
        bodies = [self._body(c, (prefills or [""] * len(conversations))[i], tokenizer, max_new_tokens, sampling)
                  for i, c in enumerate(conversations)]
        with ThreadPoolExecutor(max_workers=self.spec.workers) as pool:
            replies = list(pool.map(self._post, bodies))  # map keeps input order
        if progress is not None:
            progress(len(replies))
        for reply in replies:
            self.served[str(reply.get("model", ""))] += 1
        return [self._text(r).strip() for r in replies]

    def close(self) -> None:
        """What a stage calls when it is done with its generator (``backends.free_generator``): an endpoint
        holds nothing between calls (each batch opens and closes its own connections), so there is nothing
        to free."""

    def _body(self, messages: list[dict], prefill: str, tokenizer, max_new_tokens: int, sampling) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.spec.model, "max_tokens": max_new_tokens, "n": 1, "stream": False,
                                "temperature": 0, "seed": self.spec.seed}
        if sampling is not None:
            body |= {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
        if self.spec.api == "chat":
            if prefill:
                raise EndpointError("a prefilled probe cannot be sent to /v1/chat/completions; use api 'completions'")
            return body | {"messages": messages}
        from .models.generate import render_prompts  # torch-heavy; only an evaluation gets here

        return body | {"prompt": render_prompts(tokenizer, [messages], [prefill])[0]}

    def _text(self, reply: dict[str, Any]) -> str:
        try:
            choice = reply["choices"][0]
            text = choice["text"] if self.spec.api == "completions" else choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{public_url(self.url)}: reply is not an OpenAI completion: "
                                f"{json.dumps(reply)[:300]}") from None
        return text if isinstance(text, str) else ""

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        where = public_url(self.url)
        for attempt in range(self.spec.retries + 1):
            last = attempt == self.spec.retries
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.spec.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as err:
                if err.code not in _RETRY_STATUS or last:
                    detail = err.read()[:300].decode("utf-8", "replace")
                    raise EndpointError(f"{where}: HTTP {err.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if last:
                    raise EndpointError(f"{where}: no answer after {attempt + 1} tries: "
                                        f"{getattr(err, 'reason', err)}") from None
            except ValueError:
                raise EndpointError(f"{where}: reply is not JSON") from None
            time.sleep(min(8.0, 0.5 * 2 ** attempt))  # back off before retrying
        raise AssertionError("unreachable")  # the loop returns or raises

    def settings(self) -> dict[str, Any]:
        """How outputs were produced, for the battery record's generation settings."""
        return {"backend": "endpoint", "endpoint": public_url(self.url), "endpoint_model": self.spec.model,
                "api": self.spec.api, "decoding": "greedy", "temperature": 0, "seed": self.spec.seed,
                "batch_size_note": "requests are sent one prompt each, several in flight; the server batches"}
